"""4. History cost: events and bytes one analysed candle and one ignored duplicate add to a
monitor's history (floor beside it), and a monitor taking N closes (1,000 in the full run) one
after the other: every run of its continue-as-new chain must stay under the server's suggested
limits (4,096 events / 4 MB per run: `is_continue_as_new_suggested()`)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from temporalio.client import Client

from bench import data, history
from bench.floor import BareFloorWorkflow
from bench.stack import (
    Section,
    Stack,
    new_queue,
    second_server,
    start_monitor_worker,
    wait_floor_done,
    workers,
)
from workflows.monitor.workflow import SignalMonitorWorkflow

SUGGESTED_EVENTS = 4096
SUGGESTED_BYTES = 4 * 1024 * 1024


async def settled(client: Client, workflow_id: str, quiet: float = 0.3, timeout: float = 30) -> list:
    """The history once it stops growing (the workflow task after the last activity is done)."""
    deadline = time.monotonic() + timeout
    evs = await history.events(client, workflow_id)
    while True:
        await asyncio.sleep(quiet)
        again = await history.events(client, workflow_id)
        if len(again) == len(evs) or time.monotonic() > deadline:
            return again
        evs = again


async def _duplicates_seen(client: Client, workflow_id: str) -> int:
    state = await client.get_workflow_handle_for(SignalMonitorWorkflow.run, workflow_id).query(
        SignalMonitorWorkflow.state
    )
    return state.counts.duplicate


async def run(sec: Section, closes: int, per_kind: int = 10, suggest_at: int = SUGGESTED_EVENTS) -> None:
    st, rep, conn, trader, monitor, floor = sec.st, sec.rep, sec.conn, sec.trader, sec.monitor, sec.floor
    client = st.client
    rep.say(f"\n== 4. history cost: {per_kind} candles and {per_kind} duplicates; {closes} closes in one monitor ==")
    symbol = data.symbol_for("hist")
    [sid] = await data.new_signals(conn, trader, 1, symbol)
    [wf] = await data.start_monitors(client, [sid], monitor.task_queue)
    await data.wait_analyses(conn, [sid], 1, 60, "initial analysis")
    [fwf] = await data.start_floors(client, 1, floor.task_queue)
    base, fbase = await settled(client, wf), await settled(client, fwf)
    for n in range(1, per_kind + 1):
        k = data.kline(n, symbol)
        await client.get_workflow_handle(wf).signal(SignalMonitorWorkflow.candle_closed, k)
        await data.wait_analyses(conn, [sid], 1 + n, 30, f"close {n}", poll=0.01)
        await client.get_workflow_handle(fwf).signal(BareFloorWorkflow.candle_closed, k)
        await wait_floor_done([floor], {f"{fwf} {k['t']}"}, 30)
        await asyncio.sleep(0.1)
    analysed, fanalysed = await settled(client, wf), await settled(client, fwf)
    k = data.kline(per_kind, symbol)
    for n in range(1, per_kind + 1):
        await client.get_workflow_handle(wf).signal(SignalMonitorWorkflow.candle_closed, k)
        await client.get_workflow_handle(fwf).signal(BareFloorWorkflow.candle_closed, k)
        deadline = time.monotonic() + 30
        while await _duplicates_seen(client, wf) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("duplicate not counted")
            await asyncio.sleep(0.01)
    dups, fdups = await settled(client, wf), await settled(client, fwf)

    def per(a: list, b: list) -> tuple[float, float]:
        return (len(b) - len(a)) / per_kind, (history.size(b) - history.size(a)) / per_kind

    ev_c, by_c = per(base, analysed)
    ev_d, by_d = per(analysed, dups)
    fev_c, fby_c = per(fbase, fanalysed)
    fev_d, fby_d = per(fanalysed, fdups)
    rep.figure(
        "per analysed candle",
        f"{ev_c:.1f} events, {by_c:.0f} bytes",
        detail=f"floor {fev_c:.1f} events, {fby_c:.0f} bytes",
    )
    rep.figure(
        "per ignored duplicate",
        f"{ev_d:.1f} events, {by_d:.0f} bytes",
        detail=f"floor {fev_d:.1f} events, {fby_d:.0f} bytes",
    )

    # A monitor taking `closes` candles, each once the previous one is stored.
    if suggest_at == SUGGESTED_EVENTS:
        events, sizes, took, each = await _chain(st, conn, trader, monitor.task_queue, closes, symbol)
    else:
        # Quick run: the same on a server suggesting continue-as-new earlier, so a short chain crosses it.
        async with second_server(
            st, ("--dynamic-config-value", f"limit.historyCount.suggestContinueAsNew={suggest_at}")
        ) as other:
            async with workers(start_monitor_worker(other, new_queue("chain"))) as (w,):
                events, sizes, took, each = await _chain(other, conn, trader, w.task_queue, closes, symbol)
    tenth = max(1, closes // 10)
    rep.figure(
        "close -> stored, first/last tenth",
        f"{sum(each[:tenth]) / tenth * 1000:.0f} / {sum(each[-tenth:]) / tenth * 1000:.0f} ms",
        detail="closes back to back (10 ms apart)",
    )
    rep.figure(f"{closes} closes analysed", f"{took:.1f} s", detail=f"{took / closes * 1000:.0f} ms per close")
    rep.figure("runs (continue-as-new chain)", len(events), detail="events per run: " + ", ".join(map(str, events)))
    rep.figure(
        "largest run",
        f"{max(events)} events, {max(sizes) / 1024:.0f} KiB",
        detail=f"continue-as-new suggested at {suggest_at} events / 4096 KiB",
    )
    rep.goal("history_events_per_candle", round(ev_c, 1), 12)  # issue 16's goal (the budget was 20)
    rep.goal("history_events_per_duplicate", round(ev_d, 1), 4)
    rep.goal(f"history_max_run_events_{closes}_closes", max(events), suggest_at + round(ev_c))
    rep.goal(f"history_max_run_kib_{closes}_closes", round(max(sizes) / 1024), SUGGESTED_BYTES // 1024)


async def _chain(
    st: Stack, conn: asyncpg.Connection, trader: str, queue: str, closes: int, symbol: str
) -> tuple[list[int], list[int], float, list[float]]:
    client = st.client
    [sid] = await data.new_signals(conn, trader, 1, symbol)
    [wf] = await data.start_monitors(client, [sid], queue)
    await data.wait_analyses(conn, [sid], 1, 60, "initial analysis")
    first_run = (await client.get_workflow_handle(wf).describe()).run_id
    began = time.monotonic()
    each = []
    for n in range(1, closes + 1):
        t = time.monotonic()
        await client.get_workflow_handle(wf).signal(SignalMonitorWorkflow.candle_closed, data.kline(n, symbol))
        await data.wait_analyses(conn, [sid], 1 + n, 30, f"close {n}", poll=0.003)
        each.append(time.monotonic() - t)
        await asyncio.sleep(0.01)
    took = time.monotonic() - began
    await asyncio.sleep(0.5)
    runs = await history.runs(client, wf, first_run)
    return [len(r) for r in runs], [history.size(r) for r in runs], took, each
