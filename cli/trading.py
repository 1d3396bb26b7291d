"""`signal-monitor trading pause [--user ID | --all] [--flatten] [--reason TEXT]` and
`signal-monitor trading resume [--user ID | --all]`: the kill switch of live trading.

The state is the database's (`risk_limits.trading_paused`, per user or for everyone), read by every
worker before each live entry: a paused user opens nothing new at once, on every worker.
`--flatten` also closes the paused users' open live positions at market, through each position
workflow's `close` Update (so each close is exactly once, like an operator's). Exit codes: 0 done,
1 refused or a position did not close, 2 usage."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Callable
from typing import TextIO

import asyncpg
from temporalio.client import Client, WorkflowUpdateFailedError

from workflows.common import names
from workflows.position.models import PositionResult

EVERYONE = "everyone"


def add_trading_commands(sub: argparse._SubParsersAction, entry: Callable[[argparse.Namespace], int]) -> None:
    p = sub.add_parser("trading", help="the live-trading kill switch: pause / resume (DATABASE_URL)")
    tsub = p.add_subparsers(dest="trading_command", required=True)
    for name, help in (
        ("pause", "open no new live position for a user (or everyone); --flatten closes theirs at market"),
        ("resume", "lift a pause"),
    ):
        t = tsub.add_parser(name, help=help)
        who = t.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="the user's uuid")
        who.add_argument("--all", action="store_true", help="every user")
        if name == "pause":
            t.add_argument("--flatten", action="store_true", help="also close their open live positions at market")
            t.add_argument("--reason", default="kill switch", help="kept with the pause and in close reasons")
            t.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each close")
        t.set_defaults(func=entry, skip_teardown=True)


def _user(args: argparse.Namespace) -> uuid.UUID | None:
    if args.all:
        return None
    try:
        return uuid.UUID(args.user)
    except ValueError:
        raise ValueError(f"{args.user!r} is not a user uuid") from None


async def set_paused(conn: asyncpg.Connection, user: uuid.UUID | None, paused: bool, reason: str | None) -> None:
    """The scope's own row (user, no trader; or everyone) carries the switch."""
    updated = await conn.fetchval(
        """UPDATE risk_limits SET trading_paused = $2, paused_reason = $3,
               paused_at = CASE WHEN $2 THEN now() ELSE NULL END, updated_at = now()
           WHERE trader_id IS NULL AND user_id IS NOT DISTINCT FROM $1 RETURNING id""",
        user,
        paused,
        reason if paused else None,
    )
    if updated is None and paused:
        await conn.execute(
            """INSERT INTO risk_limits (user_id, trading_paused, paused_reason, paused_at)
               VALUES ($1, true, $2, now())""",
            user,
            reason,
        )
    if not paused:
        # Resuming a user also lifts their traders' own pauses; resuming everyone lifts every pause.
        await conn.execute(
            "UPDATE risk_limits SET trading_paused = false, paused_reason = NULL, paused_at = NULL, updated_at = now() "
            "WHERE trading_paused AND ($1::uuid IS NULL OR user_id = $1)",
            user,
        )


async def open_live_positions(conn: asyncpg.Connection, user: uuid.UUID | None) -> list[str]:
    rows = await conn.fetch(
        """SELECT signal_id FROM positions WHERE mode = 'live' AND status = 'open' AND signal_id IS NOT NULL
           AND ($1::uuid IS NULL OR user_id = $1) ORDER BY created_at""",
        user,
    )
    return [str(r["signal_id"]) for r in rows]


async def flatten(client: Client, signal_ids: list[str], reason: str, timeout: float, out: TextIO) -> int:
    """Close each position through its workflow; the number that did not close."""
    failed = 0
    for signal_id in signal_ids:
        wid = names.position_workflow_id_for(signal_id)
        handle = client.get_workflow_handle(wid)
        try:
            result = await asyncio.wait_for(
                handle.execute_update(names.CLOSE_UPDATE, {"reason": reason}, result_type=PositionResult), timeout
            )
            print(f"{wid}: {result.status}: exit {result.exit_price}, realized P&L {result.realized_pnl}", file=out)
        except (TimeoutError, WorkflowUpdateFailedError, RuntimeError) as exc:
            failed += 1
            print(f"{wid}: NOT closed: {type(exc).__name__}: {exc}", file=out)
    return failed


async def run(args: argparse.Namespace, database_url: str, connect: Callable, out: TextIO = sys.stdout) -> int:
    try:
        user = _user(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scope = f"user {user}" if user else EVERYONE
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await set_paused(conn, user, args.trading_command == "pause", getattr(args, "reason", None))
        if args.trading_command == "resume":
            print(f"trading resumed for {scope}", file=out)
            return 0
        print(f"trading paused for {scope}: no new live position opens", file=out)
        if not args.flatten:
            return 0
        signal_ids = await open_live_positions(conn, user)
    finally:
        await conn.close()
    if not signal_ids:
        print("no open live position to flatten", file=out)
        return 0
    client = await connect()
    failed = await flatten(client, signal_ids, f"{args.reason} (flatten)", args.timeout, out)
    return 1 if failed else 0
