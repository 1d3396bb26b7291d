"""Continue-as-new when Temporal suggests it (the session's dev server suggests it at 60 events),
carrying the de-duplication state: a candle analysed in an earlier run stays analysed once."""

from __future__ import annotations

import asyncio
from functools import partial

from fakes.llm_proxy import Answer
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import analyses, eventually, insert_signal, kline, signal_status
from workflows.monitor.models import MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow


async def test_continue_as_new_keeps_deduplication_and_numbering(client, database_url, db):
    row = await insert_signal(db, interval="5m", max_reanalyses=30)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, *[Answer.wait(50 + n) for n in range(12)])
        handle = await m.start(row.signal_id)
        first_run = handle.result_run_id

        async def analysed(n: int) -> MonitorView:
            s = await handle.query(SignalMonitorWorkflow.state)
            assert s.counts.analysed == n and not s.analysing, s.counts
            return s

        await eventually(lambda: analysed(1), timeout=30)
        candle = 0
        while True:
            candle += 1
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, candle))
            state = await eventually(partial(analysed, candle + 1), timeout=30)
            if state.runs > 1:
                break
            assert candle < 10, "continue-as-new was never suggested"
        latest = await client.get_workflow_handle(row.workflow_id).describe()
        assert latest.run_id != first_run
        # Every earlier candle again, in the new run: all recognised, none analysed.
        for n in range(1, candle + 1):
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, n))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, candle + 1))
        state = await eventually(lambda: analysed(candle + 2), timeout=30)
        assert state.counts.duplicate + state.counts.stale == candle, state.counts
        assert [d.analysis_number for d in state.history] == list(range(candle + 2))
        m.proxy.clear_script()
        m.proxy.script(row.signal_id, Answer.enter(90))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, candle + 2))
        result = await asyncio.wait_for(client.get_workflow_handle(row.workflow_id).result(), 30)
    rows = await analyses(db, row.signal_id)
    assert [r["analysis_number"] for r in rows] == list(range(candle + 3))
    assert len({r["candle_open_time"] for r in rows}) == candle + 3
    assert result["status"] == "in_position"
    assert await signal_status(db, row.signal_id) == "in_position"


async def test_continue_as_new_is_not_postponed_while_closes_keep_arriving(client, database_url, db):
    """A close is always waiting when an analysis ends (each analysis takes longer than the gap
    between closes): the run must still continue-as-new when Temporal suggests it, carrying the
    waiting close, instead of growing toward the hard history limit."""
    row = await insert_signal(db, interval="1m", max_reanalyses=40)
    closes = 10
    async with monitor_stack(client, database_url) as m:
        # Each analysis takes 1 s at llm-proxy: long enough that the next close, sent once the
        # analysis has reached llm-proxy, arrives while it runs, even on a busy machine.
        m.proxy.script(row.signal_id, *[Answer.delay(1.0, Answer.wait(50 + n)) for n in range(closes + 1)])
        handle = await m.start(row.signal_id)

        async def state() -> MonitorView:
            return await handle.query(SignalMonitorWorkflow.state)

        async def analysed(n: int) -> MonitorView:
            s = await state()
            assert s.counts.analysed == n and not s.analysing and s.pending_candle is None, s.counts
            return s

        # Analysis n has started once llm-proxy has its request: a condition that cannot be missed
        # (polling the `state` query for "analysing" can miss a short analysis on a busy machine).
        await m.proxy.wait_for_requests(1, timeout=30, signal_id=row.signal_id)
        for candle in range(1, closes + 1):
            # Sent while the previous analysis runs: it waits, and is there when that one ends.
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, candle))
            await m.proxy.wait_for_requests(candle + 1, timeout=30, signal_id=row.signal_id)
        final = await eventually(lambda: analysed(closes + 1), timeout=30)
    runs = [e async for e in client.list_workflows(f"WorkflowId = '{row.workflow_id}'")]
    lengths = [e.history_length for e in runs if e.status is not None and e.status.name == "CONTINUED_AS_NEW"]
    assert final.runs > 1 and lengths, f"never continued as new: {final.runs} run(s)"
    # Suggested at 60 events: a run ends within one more candle (~20 events) of the suggestion.
    assert max(lengths) <= 60 + 25, lengths
    rows = await analyses(db, row.signal_id)
    assert [r["analysis_number"] for r in rows] == list(range(closes + 1))
    assert len({r["candle_open_time"] for r in rows}) == closes + 1
    assert final.counts.skipped == 0 and final.counts.duplicate == 0
