"""`signal-monitor`: the one command operators and scripts use."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from market.intervals import FIXED_INTERVALS
from runtime.config import ConfigError, Settings
from runtime.exits import EXIT_ERROR, EXIT_OK, EXIT_SCHEMA, EXIT_USAGE, fail
from runtime.logs import setup_logging
from runtime.temporal_client import TemporalUnreachable

if TYPE_CHECKING:
    from cli.signal_report import SignalReport

log = logging.getLogger("signal_monitor")


def _run_service(service: Coroutine[Any, Any, None], refusal: type[Exception], code: int, what: str = "") -> int:
    """Run a long-running process until it stops; a `refusal` at start-up is its exit `code`."""
    try:
        asyncio.run(service)
    except refusal as exc:
        return fail(exc, code, what)
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    from migrations.runner import MigrationError, migrate

    settings: Settings = args.process_settings
    try:
        applied = asyncio.run(migrate(settings.require_database()))
    except MigrationError as exc:
        return fail(exc)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else " (up to date)"))
    return EXIT_OK


def _cmd_worker(args: argparse.Namespace) -> int:
    from workers.search_attributes import MissingSearchAttributes
    from workers.worker import run_worker

    return _run_service(run_worker(args.process_settings), MissingSearchAttributes, EXIT_ERROR)


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
    from intake.starting import monitor_summary

    return monitor_summary(row["symbol"], row["interval"], row["name"], row["trader_id"])


def _cmd_start(args: argparse.Namespace) -> int:
    from cli.operator import UsageError, workflow_id_of
    from cli.signal_rows import reset_failed_signal, signal_status
    from intake.starting import start_again, start_monitor
    from runtime.temporal_client import connect_client

    settings: Settings = args.process_settings
    try:
        # The same forms operators use elsewhere: a signal uuid or its workflow id.
        signal_id = workflow_id_of(args.signal_id).removeprefix("signal-")
    except UsageError as exc:
        return fail(exc, EXIT_USAGE)
    database_url = settings.require_database()  # the signal must exist before anything reaches Temporal

    async def go() -> int:
        exists, status = await signal_status(database_url, signal_id)
        if not exists:
            return fail(f"no signal {signal_id} in the database; no monitor started")
        client = await connect_client()
        summary = await _summary_for(signal_id, settings)
        if args.again:
            return await _start_again(client, signal_id, status, summary)
        outcome = await start_monitor(client, signal_id, settings.task_queue, summary)
        wid = outcome.handle.id
        if outcome.ended_before:
            hint = " (it failed: fix the cause, then `signal-monitor start --again`)" if status == "failed" else ""
            print(f"{wid}: a monitor for this signal has already ended; not started again{hint}")
        elif outcome.started:
            print(f"{wid}: started")
        else:
            print(f"{wid}: already running")
        return EXIT_OK

    async def _start_again(client, signal_id: str, status: str | None, summary: str | None) -> int:
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.service import RPCError

        wid = f"signal-{signal_id}"
        if status != "failed":
            return fail(f"{wid}: the signal is {status}, not failed: --again only restarts failed signals")
        try:
            desc = await client.get_workflow_handle(wid).describe()
            if desc.status == WorkflowExecutionStatus.RUNNING:
                return fail(f"{wid} is still running; cancel it first")
        except RPCError:
            pass  # never started: nothing to wait for
        try:
            moved = await reset_failed_signal(database_url, signal_id)
        except LookupError as exc:
            return fail(exc)
        handle = await start_again(client, signal_id, settings.task_queue, summary)
        print(
            f"{wid}: started again (run {handle.result_run_id}); the signal is `new` again"
            + (f", its {moved} earlier analyses are kept without a number" if moved else "")
        )
        return EXIT_OK

    return asyncio.run(go())


def _cmd_add_signal(args: argparse.Namespace) -> int:
    from cli.add_signal import UsageError, add_signal, parse_new_signal
    from market.rest import KlinesError

    try:
        spec = parse_new_signal(args)
    except UsageError as exc:
        return fail(exc, EXIT_USAGE)
    settings: Settings = args.process_settings
    database_url = settings.require_database()
    rest_url = settings.binance_rest_url
    ui_url = settings.temporal_ui_url or "http://localhost:8233"
    try:
        asyncio.run(add_signal(spec, database_url, rest_url, ui_url, args.wait, sys.stdout))
    except KlinesError as exc:
        return fail(f"no price for {spec.symbol} {spec.interval}: {exc} (or pass --price)")
    except LookupError as exc:
        return fail(exc)
    return EXIT_OK


def _report_or_exit(args: argparse.Namespace) -> SignalReport | int:
    """The signal's report for `history` and `chart`, or the exit code when there is none."""
    from cli.operator import UsageError, workflow_id_of
    from cli.signal_report import SignalNotFound, add_candles, fetch_report

    try:
        signal_id = workflow_id_of(args.signal).removeprefix("signal-")
    except UsageError as exc:
        return fail(exc, EXIT_USAGE)
    settings: Settings = args.process_settings
    database_url = settings.require_database()
    rest_url = settings.binance_rest_url

    async def go() -> SignalReport:
        return await add_candles(await fetch_report(database_url, signal_id), rest_url)

    try:
        return asyncio.run(go())
    except SignalNotFound as exc:
        return fail(exc)


def _cmd_history(args: argparse.Namespace) -> int:
    from cli.history import history_json, history_text

    report = _report_or_exit(args)
    if isinstance(report, int):
        return report
    print(history_json(report) if args.json else history_text(report))
    return EXIT_OK


def _cmd_chart(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cli.chart_render import standalone_html
    from cli.signal_report import chart_model

    report = _report_or_exit(args)
    if isinstance(report, int):
        return report
    model = chart_model(report)
    path = Path(args.output or f"chart-{report.signal.signal_id[:8]}.html")
    path.write_text(standalone_html(model))
    print(
        f"{path}: {len(model.candles)} candles ({model.candles_source}), {len(model.analyses)} analyses"
        + (f", levels from {model.levels.source}" if model.levels else "")
        + "; open it in a browser (works offline)"
    )
    return EXIT_OK


def _cmd_intake(args: argparse.Namespace) -> int:
    from activities.platform_schema import SchemaError
    from intake.service import run_intake

    return _run_service(run_intake(args.process_settings), SchemaError, EXIT_SCHEMA, "configuration: ")


def _cmd_operator(args: argparse.Namespace) -> int:
    from cli import operator as operator_cli
    from runtime.temporal_client import connect_client, describe_target

    try:
        operator_cli.check_usage(args)
    except operator_cli.UsageError as exc:
        return fail(exc, EXIT_USAGE)

    async def go() -> int:
        try:
            client = await connect_client()
        except RuntimeError as exc:
            return fail(exc, EXIT_ERROR, f"cannot reach Temporal at {describe_target()}: ")
        return await operator_cli.run(args, client)

    # No metrics runtime here: a one-shot command must not take the worker's metrics port.
    return asyncio.run(go())


def _cmd_trading(args: argparse.Namespace) -> int:
    from cli.trading import run
    from runtime.temporal_client import connect_client

    return asyncio.run(run(args, args.process_settings.require_database(), connect_client))


def _cmd_trader(args: argparse.Namespace) -> int:
    from cli.positions import run_resume

    return run_resume(args.process_settings.require_database(), args.trader_id, sys.stdout, sys.stderr)


def _cmd_rollout(args: argparse.Namespace) -> int:
    from cli.rollout import main as rollout_main

    settings: Settings = args.process_settings
    return rollout_main(args, settings.require_database(), settings.rollout_seed, sys.stdout, sys.stderr)


def _cmd_shadow(args: argparse.Namespace) -> int:
    from cli.shadow import main as shadow_main

    settings: Settings = args.process_settings
    return shadow_main(args, settings.require_database(), settings.binance_rest_url, sys.stdout)


def _cmd_bridge(args: argparse.Namespace) -> int:
    from signal_bridge.cli import main as bridge_main

    return bridge_main(args.rest)


def _cmd_dev(args: argparse.Namespace) -> int:
    from devstack.stack import main as dev_main

    return dev_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signal-monitor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending SQL migrations (DATABASE_URL)").set_defaults(func=_cmd_migrate)
    sub.add_parser("worker", help="run a Temporal worker for the monitors").set_defaults(
        func=_cmd_worker, skip_teardown=True
    )
    p = sub.add_parser("start", help="start monitoring one signal (idempotent; the signal must exist)")
    p.add_argument("signal_id")
    p.add_argument(
        "--again",
        action="store_true",
        help="a `failed` signal whose cause is fixed: set it back to `new` and start a new run under the same workflow id",
    )
    p.set_defaults(func=_cmd_start, skip_teardown=True)
    p = sub.add_parser(
        "add-signal",
        help="create a signal as the platform would (status new); the intake starts its monitor",
        description="Create a signal the way the platform's screener does; the intake then starts its monitor. "
        "Without --price it takes the close of the latest closed candle from BINANCE_REST_URL.",
    )
    p.add_argument("symbol", help="e.g. ETHUSDT")
    p.add_argument("interval", help="candle interval, e.g. 1m, 15m, 1h")
    p.add_argument("--price", type=float, help="the signal's price (default: the latest closed candle's close)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--trader", help="an existing trader's id")
    who.add_argument("--new-trader", metavar="NAME", help="create a trader with this name (and an elite owner)")
    p.add_argument("--strategy", help="the trader's instructions to the model")
    p.add_argument("--max-reanalyses", type=int, help="the trader's reanalysis limit (default 5)")
    p.add_argument("--min-confidence", type=float, help="the trader's minimum confidence to enter (default 70)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the intake to start it (0: do not)")
    p.set_defaults(func=_cmd_add_signal, skip_teardown=True)
    p = sub.add_parser("history", help="every analysis of a signal, from the database (during and after)")
    p.add_argument("signal", help="signal uuid or workflow id signal-<uuid>")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_history, skip_teardown=True)
    p = sub.add_parser("chart", help="write a chart of a signal: candles, analyses, levels, entry/exit (HTML)")
    p.add_argument("signal", help="signal uuid or workflow id signal-<uuid>")
    p.add_argument("-o", "--output", help="the HTML file to write (default chart-<signal>.html)")
    p.set_defaults(func=_cmd_chart, skip_teardown=True)
    sub.add_parser(
        "intake", help="start a monitor for every new eligible signal (LISTEN/NOTIFY + sweeps)"
    ).set_defaults(func=_cmd_intake, skip_teardown=True)
    from cli.operator import add_commands

    add_commands(sub, _cmd_operator)
    from cli.positions import add_position_commands

    add_position_commands(sub, _cmd_operator, _cmd_trader)
    from cli.trading import add_trading_commands

    add_trading_commands(sub, _cmd_trading)
    from cli.rollout import add_rollout_commands

    add_rollout_commands(sub, _cmd_rollout)
    from cli.shadow import add_shadow_commands

    add_shadow_commands(sub, _cmd_shadow)
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
    p.add_argument(
        "--live-orders",
        action="store_true",
        help="the demo trader trades live on a local Binance spot exchange driven by the replay (docs/live-orders.md)",
    )
    p.add_argument("--symbol", default="BTCUSDT", help="the demo signal's symbol (default BTCUSDT)")
    p.add_argument(
        "--interval",
        default="1m",
        choices=FIXED_INTERVALS,
        metavar="INTERVAL",
        help="the demo signal's candle interval, e.g. 1m, 5m, 15m (default 1m)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=15.0,
        help="replay clock speed-up while the replay catches up with the wall clock (15: a 1m candle every 4 s); "
        "then real time",
    )
    p.add_argument("--temporal-port", type=int, default=7233, help="Temporal dev server port (default 7233)")
    p.add_argument("--ui-port", type=int, default=8233, help="Temporal UI port (default 8233)")
    p.set_defaults(func=_cmd_dev, skip_teardown=True)
    from backtest.command import build as add_backtest

    add_backtest(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bridge"]:
        # The bridge parses its own arguments (`signal-monitor bridge --help`, `... config`).
        args = argparse.Namespace(func=_cmd_bridge, rest=argv[1:], skip_teardown=True)
    else:
        args = build_parser().parse_args(argv)
    if args.func is not _cmd_dev:
        # Next to a running `dev` stack: reach it with nothing typed (the environment still wins).
        from devstack.state import apply_to_environment

        apply_to_environment()
    try:
        # Every command reads its settings once, here: a bad value stops it before any work.
        args.process_settings = Settings.from_env()
    except ConfigError as exc:
        setup_logging()
        print(f"error: {exc}", file=sys.stderr)
        if getattr(args, "skip_teardown", False):
            _exit_skipping_teardown(EXIT_USAGE)
        return EXIT_USAGE
    setup_logging(args.process_settings)
    try:
        code = args.func(args)
    except ConfigError as exc:
        hint = ""
        if "DATABASE_URL" in str(exc) and args.func in (_cmd_add_signal, _cmd_history, _cmd_chart, _cmd_start):
            hint = "; or run this in the directory where `signal-monitor dev` is running"
        print(f"error: {exc}{hint}", file=sys.stderr)
        code = EXIT_USAGE
    except TemporalUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except BrokenPipeError:
        # `signal-monitor ... | head`: the reader left after what it wanted; the commands print
        # last, so the work is done. Quiet, like the operator commands (cli/operator).
        from cli.operator import silence_closed_pipe

        silence_closed_pipe(sys.stdout)
        code = EXIT_OK
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # asyncpg names host and port, never the password.
        print(f"error: cannot use PostgreSQL (DATABASE_URL): {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        code = 130
    if getattr(args, "skip_teardown", False):
        _exit_skipping_teardown(code)
    try:
        sys.stdout.flush()  # here, not at interpreter exit, where EPIPE would print a warning
    except BrokenPipeError:
        from cli.operator import silence_closed_pipe

        silence_closed_pipe(sys.stdout)
    return code


def _exit_skipping_teardown(code: int) -> None:
    """The Temporal SDK's Rust threads can abort the interpreter's teardown (SIGABRT, exit 134)
    after all work is done (sdk-python#300): a command's exit code must be its own, so flush and
    leave without that teardown."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reader has gone: what it did not read is not wanted
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
