"""`python -m bench [--quick] [--only NAME ...] [--db-file PATH]`: see bench/__init__.py."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import asyncpg

from bench import data
from bench.report import Report, machine_facts
from bench.stack import Section, binary, new_queue, stack, start_floor_worker, start_monitor_worker, workers

MEASUREMENTS = (
    "overhead",
    "history",
    "burst",
    "positions",
    "same_work",
    "burst10k",
    "memory",
    "llm",
    "model",
    "bridges",
)
# `--quick` keeps within about 90 s: the bridges measurement alone takes ~70 s (real replica
# subprocesses, ~10 candles of 6 s), so a quick run leaves it out unless `--only bridges` asks.
# The 10,000-monitor burst (~5 min) is full-run only as well, and so is the same-work comparison
# (interleaved rounds at two sizes, monitors then positions: ~5 min quick, ~10 min full).
QUICK_DEFAULT = tuple(m for m in MEASUREMENTS if m not in ("bridges", "burst10k", "same_work"))
BRIDGE_GOALS = (
    "bridge_signals_per_close_1_replica",
    "bridge_signals_per_close_3_replicas",
    "bridge_takeover_seconds",
    "bridge_closes_lost",
)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller counts, without the bridges measurement: finishes within about a minute and a half",
    )
    p.add_argument("--only", action="append", choices=MEASUREMENTS, help="run only these measurements")
    p.add_argument("--db-file", help="file-backed SQLite for the Temporal dev server (default: in memory)")
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `temporal server start-dev` (repeat), e.g. --dynamic-config-value K=V",
    )
    p.add_argument("--closes", type=int, help="closes for the overhead measurement (default 200, quick 50)")
    p.add_argument(
        "--chain-closes",
        type=int,
        help="closes fed to one monitor for the history chain "
        "(default 1000; quick 60 on a server suggesting continue-as-new at 600 events)",
    )
    p.add_argument(
        "--idle-monitors",
        type=int,
        nargs="+",
        metavar="N",
        help="idle monitor counts for the memory measurement (default 1000 10000, quick 300)",
    )
    p.add_argument(
        "--big-burst", type=int, help="monitors for the big burst (default 10000; full run or --only burst10k)"
    )
    p.add_argument(
        "--same-work-sizes",
        type=int,
        nargs="+",
        metavar="N",
        help="burst sizes against the same-work floor (default 100 1000, quick 100 300)",
    )
    p.add_argument("--same-work-rounds", type=int, help="interleaved rounds per size (default 3)")
    p.add_argument("--bridge-streams", type=int, help="streams for the bridges measurement (default 2000, quick 100)")
    p.add_argument(
        "--bridge-monitors", type=int, help="monitors for the bridges measurement (default 10000, quick 500)"
    )
    return p.parse_args(argv)


def temporal_version() -> str:
    try:
        out = subprocess.run([binary("temporal"), "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.strip().replace("temporal version ", "CLI ")
    except Exception:
        return "version unknown"


async def main(args: argparse.Namespace) -> int:
    from bench import bridge_share, burst, burst_big, history_cost, llm_pressure, memory, overhead, positions, same_work

    quick = args.quick
    wanted = set(args.only or (QUICK_DEFAULT if quick else MEASUREMENTS))
    rep = Report()

    async def measure(name: str, run: Callable[[], Awaitable[object]]) -> None:
        """One measurement, when asked for: a failure is reported under its name and the run goes on."""
        if name in wanted:
            try:
                await run()
            except Exception as err:
                rep.failed(name, err)

    began = time.monotonic()
    rep.say(f"signal-monitor benchmarks ({'quick' if quick else 'full'} run), {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for fact in machine_facts(args.db_file, temporal_version()):
        rep.say(f"  {fact}")
    async with stack(args.db_file, tuple(args.server_arg)) as st:
        conn = await asyncpg.connect(st.database_url)
        try:
            trader = await data.new_trader(conn)
            async with workers(
                start_monitor_worker(st, new_queue("mon")), start_floor_worker(st, new_queue("floor"))
            ) as (monitor, floor):
                sec = Section(st, rep, conn, trader, monitor, floor)
                await measure("overhead", lambda: overhead.run(sec, args.closes or (50 if quick else 200)))
                await measure(
                    "history",
                    lambda: history_cost.run(
                        sec,
                        args.chain_closes or (60 if quick else 1000),
                        suggest_at=600 if quick else history_cost.SUGGESTED_EVENTS,
                    ),
                )
                await measure("burst", lambda: burst.run(sec, quick))
                await measure("positions", lambda: positions.run(sec, quick))
                await measure(
                    "same_work",
                    lambda: same_work.run(
                        sec,
                        quick,
                        tuple(args.same_work_sizes) if args.same_work_sizes else None,
                        args.same_work_rounds or same_work.ROUNDS,
                    ),
                )
                await measure("burst10k", lambda: burst_big.run(sec, args.big_burst or burst_big.DEFAULT_SIZE))
            counts = tuple(sorted(args.idle_monitors or ((300,) if quick else (1000, 10000))))
            await measure("memory", lambda: memory.run(st, rep, conn, trader, counts))
            await measure("llm", lambda: llm_pressure.run(st, rep, conn, trader, quick))
            await measure("model", lambda: _model(rep, quick))
            if "bridges" not in wanted and not args.only:
                # Every goal line still appears: these say how to take them.
                for name in BRIDGE_GOALS:
                    rep.not_run(name, "python -m bench --quick --only bridges (about 70 s)")
            if "same_work" not in wanted and not args.only:
                for name in same_work.goal_names(quick):
                    rep.not_run(name, "python -m bench --quick --only same_work (about 5 minutes)")
            await measure(
                "bridges", lambda: bridge_share.run(st, rep, quick, args.bridge_streams, args.bridge_monitors)
            )
        finally:
            await conn.close()
    rep.say(
        f"\ntotal time {time.monotonic() - began:.0f} s; figures taken while other processes may "
        "share the CPUs are noisy: rerun on a quiet machine before quoting them"
    )
    for f in rep.failures:
        rep.say(f"FAILED {f}")
    rep.say("")
    for g in rep.goals:
        rep.say(g.line())
    for line in rep.not_run_lines:
        rep.say(line)
    return 1 if rep.failures else 0


async def _model(rep: Report, quick: bool) -> None:
    from bench import model_backend

    model_backend.cpu(rep)
    await model_backend.latency_bound(rep, quick)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    code = asyncio.run(main(parse()))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # sdk-python#300: the SDK can crash at interpreter teardown
