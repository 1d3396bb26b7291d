"""`signal-monitor`: the one command operators and scripts use."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import asyncpg

from workers.config import ConfigError, Settings
from workers.logs import setup_logging
from workers.temporal_client import TemporalUnreachable

log = logging.getLogger("signal_monitor")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _cmd_migrate(args: argparse.Namespace) -> int:
    from workers.migrate import MigrationError, migrate

    settings = Settings.from_env()
    try:
        applied = asyncio.run(migrate(settings.require_database()))
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else " (up to date)"))
    return EXIT_OK


def _cmd_worker(args: argparse.Namespace) -> int:
    from workers.search_attributes import MissingSearchAttributes
    from workers.worker import run_worker

    try:
        asyncio.run(run_worker(Settings.from_env()))
    except MissingSearchAttributes as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


async def _summary_for(signal_id: str, settings: Settings) -> str | None:
    """The workflow's UI summary (symbol, interval, trader), when the database is reachable."""
    if not settings.database_url:
        return None
    import asyncpg

    try:
        conn = await asyncpg.connect(settings.database_url, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        row = await conn.fetchrow(
            """SELECT s.symbol, coalesce(s.interval, t.filter->>'interval') AS interval, t.name, s.trader_id
               FROM signals s LEFT JOIN traders t ON t.id = s.trader_id WHERE s.id = $1::uuid""",
            signal_id,
        )
    finally:
        await conn.close()
    if row is None:
        return None
    from workers.starting import monitor_summary

    return monitor_summary(row["symbol"], row["interval"], row["name"], row["trader_id"])


def _cmd_start(args: argparse.Namespace) -> int:
    from workers.operator_cli import UsageError, workflow_id_of
    from workers.starting import start_monitor
    from workers.temporal_client import connect_client

    settings = Settings.from_env()
    try:
        # The same forms operators use elsewhere: a signal uuid or its workflow id.
        signal_id = workflow_id_of(args.signal_id).removeprefix("signal-")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def go() -> int:
        client = await connect_client()
        summary = await _summary_for(signal_id, settings)
        outcome = await start_monitor(client, signal_id, settings.task_queue, summary)
        wid = outcome.handle.id
        if outcome.ended_before:
            print(f"{wid}: a monitor for this signal has already ended; not started again")
        elif outcome.started:
            print(f"{wid}: started")
        else:
            print(f"{wid}: already running")
        return EXIT_OK

    return asyncio.run(go())


def _cmd_intake(args: argparse.Namespace) -> int:
    from workers.intake import run_intake

    asyncio.run(run_intake(Settings.from_env()))
    return EXIT_OK


def _cmd_operator(args: argparse.Namespace) -> int:
    from workers import operator_cli
    from workers.temporal_client import connect_client, describe_target

    try:
        operator_cli.check_usage(args)
    except operator_cli.UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def go() -> int:
        try:
            client = await connect_client()
        except RuntimeError as exc:
            print(f"error: cannot reach Temporal at {describe_target()}: {exc}", file=sys.stderr)
            return EXIT_ERROR
        return await operator_cli.run(args, client)

    # No metrics runtime here: a one-shot command must not take the worker's metrics port.
    return asyncio.run(go())


def _cmd_trader(args: argparse.Namespace) -> int:
    from workers.position_cli import run_resume

    return run_resume(Settings.from_env().require_database(), args.trader_id, sys.stdout, sys.stderr)


def _cmd_bridge(args: argparse.Namespace) -> int:
    from signal_bridge.cli import main as bridge_main

    return bridge_main(args.rest)


def _cmd_dev(args: argparse.Namespace) -> int:
    from workers.dev import main as dev_main

    return dev_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signal-monitor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending SQL migrations (DATABASE_URL)").set_defaults(func=_cmd_migrate)
    sub.add_parser("worker", help="run a Temporal worker for the monitors").set_defaults(
        func=_cmd_worker, skip_teardown=True
    )
    p = sub.add_parser("start", help="start monitoring one signal (idempotent)")
    p.add_argument("signal_id")
    p.set_defaults(func=_cmd_start, skip_teardown=True)
    sub.add_parser(
        "intake", help="start a monitor for every new eligible signal (LISTEN/NOTIFY + sweeps)"
    ).set_defaults(func=_cmd_intake, skip_teardown=True)
    from workers.operator_cli import add_commands

    add_commands(sub, _cmd_operator)
    from workers.position_cli import add_position_commands

    add_position_commands(sub, _cmd_operator, _cmd_trader)
    # Listed here for --help; main() hands everything after `bridge` to the bridge's own parser.
    p = sub.add_parser("bridge", help="forward Binance candle closes to the monitors", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_bridge, skip_teardown=True)
    p = sub.add_parser(
        "dev",
        help="run the whole stack locally, offline: Temporal dev server + UI, PostgreSQL, worker, intake, "
        "bridge on replayed Binance data, an llm-proxy stand-in, and a demo signal",
    )
    p.add_argument("--until-decided", action="store_true", help="stop everything once the demo signal is decided")
    p.add_argument("--live", action="store_true", help="use the real Binance streams instead of the local replay")
    p.add_argument("--fresh", action="store_true", help="start from empty state (.dev-state)")
    p.add_argument("--symbol", default="BTCUSDT")
    p.add_argument("--interval", default="1m")
    p.add_argument("--speed", type=float, default=15.0, help="replay clock speed-up (15: a 1m candle every 4 s)")
    p.add_argument("--temporal-port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    p.set_defaults(func=_cmd_dev, skip_teardown=True)
    from workers.backtest.command import build as add_backtest

    add_backtest(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bridge"]:
        # The bridge parses its own arguments (`signal-monitor bridge --help`, `... config`).
        args = argparse.Namespace(func=_cmd_bridge, rest=argv[1:], skip_teardown=True)
    else:
        args = build_parser().parse_args(argv)
    setup_logging()
    try:
        code = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except TemporalUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # asyncpg names host and port, never the password.
        print(f"error: cannot use PostgreSQL (DATABASE_URL): {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        code = 130
    if getattr(args, "skip_teardown", False):
        _exit_skipping_teardown(code)
    return code


def _exit_skipping_teardown(code: int) -> None:
    """The Temporal SDK's Rust threads can abort the interpreter's teardown (SIGABRT, exit 134)
    after all work is done (sdk-python#300): a command's exit code must be its own, so flush and
    leave without that teardown."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
