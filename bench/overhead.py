"""1. Close-to-analysis overhead: one monitor and one floor workflow, N closes each, one at a
time (the next only once the previous one is stored), monitor and floor alternating so both see
the same machine. Figure: time from the close leaving its sender (the bridge receiving the frame,
when the bridge delivers) to the per-candle activity starting, p50 and p99."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from bench import data, history
from bench.floor import NOOP_ACTIVITY
from bench.report import Report, percentile, ratio
from bench.stack import Stack, WorkerProcess, wait_floor_done

ANALYSE, RECORD = "analyze_signal", "record_analysis"


@dataclass
class Latencies:
    to_start: list[float]  # seconds: close sent -> activity started
    signal_to_start: list[float]  # seconds: Signaled event -> activity started (server side)
    to_stored: list[float]  # seconds: close sent -> candle's last activity completed


def _latencies(sent: dict[int, float], timings: list[history.CandleTiming]) -> Latencies:
    order = [sent[n] for n in sorted(sent)]
    if len(timings) != len(order):
        raise AssertionError(f"{len(order)} closes sent, {len(timings)} found in the history")
    return Latencies(
        to_start=[t.started_at - s for s, t in zip(order, timings)],
        signal_to_start=[t.started_at - t.signaled_at for t in timings],
        to_stored=[t.stored_at - s for s, t in zip(order, timings)],
    )


async def run(st: Stack, rep: Report, conn: asyncpg.Connection, trader: str, monitor: WorkerProcess,
              floor: WorkerProcess, closes: int, bridge_sender=None) -> None:
    rep.say(f"\n== 1. close-to-analysis overhead: {closes} closes, one at a time ==")
    client = st.client
    symbol = data.symbol_for("ovh")
    [sid] = await data.new_signals(conn, trader, 1, symbol)
    [wf] = await data.start_monitors(client, [sid], monitor.task_queue)
    await data.wait_analyses(conn, [sid], 1, 60, "initial analysis")
    [fwf] = await data.start_floors(client, 1, floor.task_queue)
    mon_sent: dict[int, float] = {}
    floor_sent: dict[int, float] = {}
    send = bridge_sender or (lambda w, k: client.get_workflow_handle(w).signal("candle_closed", k))
    for n in range(1, closes + 1):
        k = data.kline(n, symbol)
        await asyncio.sleep(0.02)  # both idle before each close
        mon_sent[n] = time.time()
        await send(wf, k)
        await data.wait_analyses(conn, [sid], 1 + n, 30, f"close {n}", poll=0.005)
        await asyncio.sleep(0.02)
        floor_sent[n] = time.time()
        await client.get_workflow_handle(fwf).signal("candle_closed", k)
        await wait_floor_done([floor], {f"{fwf} {k['t']}"}, 30)
    mon = _latencies(mon_sent, history.candle_timings(await history.events(client, wf), ANALYSE, RECORD)[-closes:])
    flo = _latencies(floor_sent, history.candle_timings(await history.events(client, fwf), NOOP_ACTIVITY, NOOP_ACTIVITY))
    ms = 1000
    for label, lat in (("monitor", mon), ("floor", flo)):
        rep.figure(f"{label} close->activity start p50/p99", f"{percentile(lat.to_start, 50)*ms:.1f} / "
                   f"{percentile(lat.to_start, 99)*ms:.1f}", "ms")
        rep.figure(f"{label} signal event->start p50/p99", f"{percentile(lat.signal_to_start, 50)*ms:.1f} / "
                   f"{percentile(lat.signal_to_start, 99)*ms:.1f}", "ms", "server clock only")
        rep.figure(f"{label} close->stored p50/p99", f"{percentile(lat.to_stored, 50)*ms:.1f} / "
                   f"{percentile(lat.to_stored, 99)*ms:.1f}", "ms",
                   "monitor: record_analysis done; floor: no-op done")
    rep.goal("overhead_p50_ratio", ratio(percentile(mon.to_start, 50), percentile(flo.to_start, 50)), 1.2)
    rep.goal("overhead_p99_ratio", ratio(percentile(mon.to_start, 99), percentile(flo.to_start, 99)), 1.2)
