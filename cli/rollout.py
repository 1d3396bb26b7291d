"""`signal-monitor rollout show | set MODE [--percent N] | allow --trader ID | allow --user ID |
deny --trader ID | deny --user ID`, each with `--live` for the live-order ladder and `--dry-run`.

Every command says how many of the last day's signals each step would monitor: the signals whose
trader and owner are eligible (auto-analysis on, elite, not paused), counted against each rollout.
A change is one row written (`monitor_rollout` / `live_rollout`); the table's trigger NOTIFYs the
intakes, which act on it at once. Exit codes: 0 done, 2 usage (a bad mode, percent or id)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TextIO

import asyncpg

from activities import platform_schema
from intake.service import build_queries, owner_problem
from runtime import live_rollout, rollout_store
from runtime.exits import EXIT_OK, EXIT_USAGE
from runtime.live_rollout import default_caps
from runtime.rollout import MODES, Rollout, RolloutError, allowing, ladder, parse_percent, parse_seed, with_mode

DRY_RUN_WINDOW = timedelta(days=1)


def add_rollout_commands(sub: argparse._SubParsersAction, entry: Callable[[argparse.Namespace], int]) -> None:
    p = sub.add_parser(
        "rollout",
        help="who is monitored (and, with --live, who may place live orders): show or change the ladder",
        description="The rollout ladder: off -> traders -> users -> percent N -> all (docs/rollout.md).",
    )
    steps = p.add_subparsers(dest="rollout_command", required=True)
    show = steps.add_parser("show", help="the rollout and how many of the last day's signals each step would monitor")
    _common(show, dry_run=False)
    s = steps.add_parser("set", help="change the mode")
    s.add_argument("mode", choices=MODES)
    s.add_argument("--percent", type=_percent, help="percent of users (0-100, two decimals) for the percent mode")
    _common(s)
    for name, what in (("allow", "add to the allow-list"), ("deny", "remove from the allow-list")):
        a = steps.add_parser(name, help=f"{what}: a trader (test signals) or a user (a canary)")
        who = a.add_mutually_exclusive_group(required=True)
        who.add_argument("--trader", metavar="ID", help="trader id")
        who.add_argument("--user", metavar="ID", help="user id (every trader the user owns)")
        _common(a)
    c = steps.add_parser("caps", help="live orders: per-user caps in USD overriding the step's defaults")
    c.add_argument("--max-order-usd", type=_usd, help="largest order (empty: the step's default)")
    c.add_argument("--max-total-usd", type=_usd, help="largest open live exposure per user (empty: the default)")
    c.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    c.set_defaults(live=True)
    p.set_defaults(func=entry, skip_teardown=True)


def _usd(raw: str) -> Decimal | None:
    if raw.strip() == "":
        return None
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite amount of 0 or more, got {raw!r}")
    return value


def _common(p: argparse.ArgumentParser, dry_run: bool = True) -> None:
    p.add_argument("--live", action="store_true", help="the live-order ladder (live_rollout) instead of monitoring")
    if dry_run:
        p.add_argument("--dry-run", action="store_true", help="say what the change would do; change nothing")


def _percent(raw: str) -> Decimal:
    try:
        return parse_percent(raw)
    except RolloutError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class Recent:
    """The last day's signals whose trader and owner are eligible: (trader id, owner id) each."""

    total: int
    eligible: list[tuple[str, str | None]]

    def monitored(self, rollout: Rollout) -> int:
        return sum(1 for trader, owner in self.eligible if rollout.admits(trader, owner))


async def recent_signals(conn: asyncpg.Connection, since: datetime) -> Recent:
    schema = await platform_schema.inspect(conn)
    queries = build_queries(schema)
    rows = await conn.fetch(queries.recent, since)
    eligible = [
        (str(r["trader_id"]), str(r["owner_id"]) if r["owner_id"] else None)
        for r in rows
        if owner_problem(r, queries.profile_tier) is None
    ]
    return Recent(total=len(rows), eligible=eligible)


def changed(args: argparse.Namespace, current: Rollout) -> Rollout:
    if args.rollout_command == "set":
        return with_mode(current, args.mode, args.percent)
    return allowing(current, trader=args.trader, user=args.user, allow=args.rollout_command == "allow")


def _label(r: Rollout) -> str:
    return r.mode + (f" {r.percent.normalize():f} %" if r.mode == "percent" else "")


def ladder_lines(current: Rollout, recent: Recent, live: bool) -> list[str]:
    lines = [
        f"last 24 h: {recent.total} signal(s), {len(recent.eligible)} eligible "
        "(auto-analysis on, elite owner, trader not paused); each step would "
        + ("let place live orders:" if live else "monitor:")
    ]
    for label, step in ladder(current):
        here = "  <- now" if _label(step) == _label(current) else ""
        caps = ""
        if live:
            c = default_caps(step)
            caps = f"   caps {c.max_order_usd}/order, {c.max_total_usd} open per user"
        lines.append(f"  {label:<14} {recent.monitored(step):>6}{caps}{here}")
    return lines


def describe(r: Rollout, table: str) -> list[str]:
    lines = [f"{table}: {r.describe()} (revision {r.revision})"]
    if r.trader_ids:
        lines.append("  traders allowed: " + ", ".join(sorted(r.trader_ids)))
    if r.user_ids:
        lines.append("  users allowed: " + ", ".join(sorted(r.user_ids)))
    return lines


async def run_rollout(
    args: argparse.Namespace,
    database_url: str,
    seed: Rollout,
    out: TextIO,
    err: TextIO,
    now: datetime | None = None,
) -> int:
    table: rollout_store.Table = "live_rollout" if args.live else "monitor_rollout"
    seed = parse_seed("off") if args.live else seed  # live orders start switched off
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        current = await rollout_store.read_or_seed(conn, seed, table)
        recent = await recent_signals(conn, (now or datetime.now(UTC)) - DRY_RUN_WINDOW)
        if args.rollout_command == "show":
            lines = describe(current, table)
            if args.live:
                lines.append(_caps_line(await live_rollout.load(conn)))
            for line in lines + ladder_lines(current, recent, args.live):
                print(line, file=out)
            return EXIT_OK
        if args.rollout_command == "caps":
            return await _set_caps(conn, args, out)
        try:
            wanted = changed(args, current)
        except RolloutError as exc:
            print(f"error: {exc}", file=err)
            return EXIT_USAGE
        before, after = recent.monitored(current), recent.monitored(wanted)
        what = "live orders for" if args.live else "monitored:"
        summary = (
            f"{_label(current)} -> {_label(wanted)}: of the last 24 h's {len(recent.eligible)} eligible signal(s), "
            f"{what} {before} -> {after}"
        )
        if args.dry_run:
            print(f"dry run, nothing changed: {summary}", file=out)
            for line in describe(wanted, table):
                print(line, file=out)
            return EXIT_OK
        stored = await rollout_store.write(conn, wanted, by=f"cli ({_user()})", table=table)
        print(f"{table} revision {stored.revision}: {summary}", file=out)
        for line in describe(stored, table):
            print(line, file=out)
        return EXIT_OK
    finally:
        await conn.close()


def _caps_line(live: live_rollout.LiveRollout) -> str:
    caps, defaults = live.caps, live_rollout.default_caps(live.rollout)
    own = (
        " (the step's defaults)"
        if caps == defaults
        else f" (the step's defaults: {defaults.max_order_usd}/{defaults.max_total_usd})"
    )
    return f"  caps now: {caps.max_order_usd} USD per order, {caps.max_total_usd} USD open per user{own}"


async def _set_caps(conn: asyncpg.Connection, args: argparse.Namespace, out: TextIO) -> int:
    await rollout_store.read_or_seed(conn, parse_seed("off"), "live_rollout")
    if args.dry_run:
        print(
            f"dry run, nothing changed: caps would be {args.max_order_usd}/{args.max_total_usd} (None: default)",
            file=out,
        )
        return EXIT_OK
    await conn.execute(
        "UPDATE live_rollout SET max_order_usd = $1, max_total_usd = $2, updated_by = $3 WHERE id",
        args.max_order_usd,
        args.max_total_usd,
        f"cli ({_user()})",
    )
    print(_caps_line(await live_rollout.load(conn)).strip(), file=out)
    return EXIT_OK


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def main(args: argparse.Namespace, database_url: str, seed: Rollout, out: TextIO, err: TextIO) -> int:
    return asyncio.run(run_rollout(args, database_url, seed, out, err))


def parse(argv: list[str]) -> argparse.Namespace:
    """The rollout command's arguments alone (tests call the command in-process)."""
    parser = argparse.ArgumentParser(prog="signal-monitor")
    add_rollout_commands(parser.add_subparsers(dest="command", required=True), lambda _a: EXIT_OK)
    return parser.parse_args(argv)
