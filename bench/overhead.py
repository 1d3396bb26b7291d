"""1. Close-to-analysis overhead: one monitor and one floor workflow, N closes each, one at a
time (the next only once the previous one is stored), monitor and floor alternating so both see
the same machine. Figure: time from the close leaving its sender to the per-candle activity
starting (ActivityTaskStarted in the history), p50 and p99.

Monitor: the close is a `x:true` kline frame FakeBinance sends to the real bridge (`run_bridge`,
in this process), which finds the monitor through visibility and signals it; t0 is just before
FakeBinance sends the frame. Floor: the bench signals it directly; t0 is just before the call.

A third workflow, the *queued floor* (the same floor on a worker with eager activity execution
off), takes the same closes: its no-op goes through the task queue, as the monitor's analysis
must (it runs on `<queue>-llm`, where the llm-proxy caps apply, and eager execution would bypass
the queue's rate limit). Against it the overhead is printed twice, as figures without a goal:
close -> start (the monitor's figure includes the bridge's hop from frame to signal) and, on the
server's clock only, signal event -> start (the bridge's hop left out)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg

from bench import burst, data, history
from bench.floor import NOOP_ACTIVITY, BareFloorWorkflow
from bench.report import Report, percentile, ratio
from bench.stack import Section, Stack, WorkerProcess, new_queue, start_floor_worker, wait_floor_done, workers
from fakes.binance import FakeBinance, stream_name
from runtime.config import RUNNING_MONITORS_QUERY, BridgeSettings
from signal_bridge.service import run_bridge
from signal_bridge.stats import BridgeStats

ANALYSE, RECORD = burst.ANALYSE, burst.RECORD
IDLE = 0.1


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
        to_start=[t.started_at - s for s, t in zip(order, timings, strict=False)],
        signal_to_start=[t.started_at - t.signaled_at for t in timings],
        to_stored=[t.stored_at - s for s, t in zip(order, timings, strict=False)],
    )


@contextlib.asynccontextmanager
async def bridge(st: Stack, task_queue: str, symbol: str) -> AsyncIterator[tuple[FakeBinance, BridgeStats]]:
    """FakeBinance and the real bridge, watching only this queue's monitors. No REST backfill:
    every close the monitor gets is one the bench sent."""
    async with FakeBinance() as fake:
        cfg = BridgeSettings(
            ws_url=fake.ws_url,
            rest_url=fake.rest_url,
            refresh_seconds=0.5,
            query=f"{RUNNING_MONITORS_QUERY} AND TaskQueue = '{task_queue}'",
            backfill_on_start=False,
            backfill_new_streams=False,
            missing_close_grace=3600.0,
            stats_seconds=3600.0,
        )
        stop, ready, stats = asyncio.Event(), asyncio.Event(), BridgeStats()
        task = asyncio.create_task(run_bridge(cfg, client=st.client, stop=stop, ready=ready, stats=stats))
        try:
            await asyncio.wait_for(ready.wait(), 30)
            stream = stream_name(symbol, data.INTERVAL)
            deadline = time.monotonic() + 30
            while not fake.subscribers(stream) or stats.streams_watched < 1:
                if task.done():
                    task.result()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the bridge never subscribed {stream}")
                await asyncio.sleep(0.05)
            yield fake, stats
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


def frame(k: dict) -> dict:
    return {"stream": stream_name(k["s"], k["i"]), "data": {"e": "kline", "E": k["T"] + 300, "s": k["s"], "k": k}}


async def run(sec: Section, closes: int) -> None:
    st, rep, conn, trader, monitor, floor = sec.st, sec.rep, sec.conn, sec.trader, sec.monitor, sec.floor
    rep.say(f"\n== 1. close-to-analysis overhead: {closes} closes, one at a time; monitor through the bridge ==")
    client = st.client
    symbol = data.symbol_for("ovh")
    [sid] = await data.new_signals(conn, trader, 1, symbol)
    [wf] = await data.start_monitors(client, [sid], monitor.task_queue)
    await data.wait_analyses(conn, [sid], 1, 60, "initial analysis")
    async with workers(start_floor_worker(st, new_queue("floorq"), eager=False)) as [queued]:
        floors = [
            _Floor("floor", floor, (await data.start_floors(client, 1, floor.task_queue))[0]),
            _Floor("queued floor", queued, (await data.start_floors(client, 1, queued.task_queue))[0]),
        ]
        async with bridge(st, monitor.task_queue, symbol) as (fake, stats):
            mon_sent = await _alternate(st, conn, floors, sid, symbol, closes, fake)
            snap = stats.snapshot()
    rep.figure(
        "bridge: closes received/forwarded",
        f"{snap['closes_received']}/{snap['closes_forwarded']}",
        detail=f"signals {snap['signals_sent']}, failures {snap['signal_failures']}, "
        f"frame->signal delivered ms {snap['signal_latency_ms']}",
    )
    await _report(st, rep, wf, mon_sent, floors, closes)


@dataclass
class _Floor:
    label: str
    worker: WorkerProcess
    workflow_id: str
    sent: dict[int, float] = field(default_factory=dict)


async def _alternate(
    st: Stack,
    conn: asyncpg.Connection,
    floors: list[_Floor],
    sid: str,
    symbol: str,
    closes: int,
    fake: FakeBinance,
) -> dict[int, float]:
    client = st.client
    mon_sent: dict[int, float] = {}
    for n in range(1, closes + 1):
        k = data.kline(n, symbol)
        # All idle before each close: a monitor fed closes less than ~0.1 s after the last one
        # was stored was seen to fall into ~80 ms dispatch delays on this dev server (RESULTS.md).
        await asyncio.sleep(IDLE)
        mon_sent[n] = time.time()
        await fake.publish(frame(k))
        await data.wait_analyses(conn, [sid], 1 + n, 30, f"close {n}", poll=0.005)
        for fl in floors:
            await asyncio.sleep(IDLE)
            fl.sent[n] = time.time()
            await client.get_workflow_handle(fl.workflow_id).signal(BareFloorWorkflow.candle_closed, k)
            await wait_floor_done([fl.worker], {f"{fl.workflow_id} {k['t']}"}, 30)
    return mon_sent


async def _report(
    st: Stack, rep: Report, wf: str, mon_sent: dict[int, float], floors: list[_Floor], closes: int
) -> None:
    client = st.client
    if os.environ.get("BENCH_DEBUG"):
        from temporalio.api.enums.v1 import EventType

        t0 = None
        for e in (await history.events(client, wf))[-20:]:
            t = history.ts(e)
            t0 = t if e.event_type == history.SIGNALED else t0
            rep.say(f"  {e.event_id:5d} {EventType.Name(e.event_type)[11:]:36s} {(t - (t0 or t)) * 1000:7.1f} ms")
    mon = _latencies(mon_sent, history.candle_timings(await history.events(client, wf), ANALYSE, RECORD)[-closes:])
    measured = {"monitor": mon}
    for fl in floors:
        timings = history.candle_timings(await history.events(client, fl.workflow_id), NOOP_ACTIVITY, NOOP_ACTIVITY)
        measured[fl.label] = _latencies(fl.sent, timings)
    ms = 1000
    for label, lat in measured.items():
        rep.figure(
            f"{label} close->activity start p50/p99",
            f"{percentile(lat.to_start, 50) * ms:.1f} / {percentile(lat.to_start, 99) * ms:.1f}",
            "ms",
        )
        rep.figure(
            f"{label} signal event->start p50/p99",
            f"{percentile(lat.signal_to_start, 50) * ms:.1f} / {percentile(lat.signal_to_start, 99) * ms:.1f}",
            "ms",
            "server clock only",
        )
        rep.figure(
            f"{label} close->stored p50/p99",
            f"{percentile(lat.to_stored, 50) * ms:.1f} / {percentile(lat.to_stored, 99) * ms:.1f}",
            "ms",
            "monitor: analysis and its row done; floor: no-op done",
        )
    flo, queued = measured["floor"], measured["queued floor"]
    for name, pick in (("close->start", lambda lat: lat.to_start), ("signal->start", lambda lat: lat.signal_to_start)):
        rep.figure(
            f"vs queued floor, {name} p50/p99",
            f"{ratio(percentile(pick(mon), 50), percentile(pick(queued), 50)):.2f} / "
            f"{ratio(percentile(pick(mon), 99), percentile(pick(queued), 99)):.2f}",
            detail="monitor / queued floor (no goal: the floor's no-op is dispatched as the analysis is)",
        )
    rep.goal("overhead_p50_ratio", ratio(percentile(mon.to_start, 50), percentile(flo.to_start, 50)), 1.2)
    rep.goal("overhead_p99_ratio", ratio(percentile(mon.to_start, 99), percentile(flo.to_start, 99)), 1.2)
