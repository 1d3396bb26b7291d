"""Temporal owns retries: llm-proxy faults are retried with backoff (Retry-After honoured), bad
answers are never a silent `continue`, and a retried write never writes twice.

The first case runs the production policy (its gaps are the figures checked); the one that
exhausts six attempts gives the worker a short first interval (the setting
SIGNAL_MONITOR_ANALYSIS_RETRY_INITIAL_SECONDS), since waiting out 2+4+8+16+32 s proves nothing more."""

from __future__ import annotations

import itertools
import time
import uuid

from temporalio import activity
from temporalio.worker import Worker

from activities.database import create_pool
from activities.llm_proxy import LlmProxy, new_http_client
from activities.position_starter import PositionStarter
from activities.signals_db import SignalStore
from fakes.llm_proxy import Answer, FakeLlmProxy, Fault
from tests.helpers.monitor import TEST_KEY, analysis_recorder, monitor_stack
from tests.helpers.support import analyses, eventually, insert_signal, kline
from workflows.common.names import llm_task_queue_for, position_workflow_id_for
from workflows.common.policies import ANALYSIS_RETRY
from workflows.monitor.models import MonitorView, RecordAnalysisInput, RecordedAnalysis
from workflows.monitor.workflow import SignalMonitorWorkflow


async def _state(handle) -> MonitorView:
    return await handle.query(SignalMonitorWorkflow.state)


async def _analysed(handle, n: int) -> MonitorView:
    state = await _state(handle)
    assert state.counts.analysed == n and not state.analysing, state
    return state


async def test_transient_faults_are_retried_into_one_analysis(client, database_url, db):
    row = await insert_signal(db)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(
            row.signal_id,
            Fault.status(429, retry_after=1),
            Fault.status(503),
            Fault.bad_answer("unknown_decision"),
            Answer.wait(58),
        )
        started = time.monotonic()
        handle = await m.start(row.signal_id)
        state = await eventually(lambda: _analysed(handle, 1), timeout=60)
        elapsed = time.monotonic() - started
    sent = m.proxy.requests_for(row.signal_id)
    assert len(sent) == 4
    gaps = [b.monotonic - a.monotonic for a, b in itertools.pairwise(sent)]
    # Retry-After: 1 s (not the 2 s initial backoff), then exponential: 2 s, 4 s.
    assert ANALYSIS_RETRY.initial_interval.total_seconds() == 2 and m.settings.analysis_retry_initial_seconds == 2
    assert 0.9 <= gaps[0] < 1.9, gaps
    assert gaps[1] >= 1.9 and gaps[2] >= 3.8, gaps
    assert state.counts.failed_analyses == 0 and elapsed < 30
    rows = await analyses(db, row.signal_id)
    assert len(rows) == 1 and rows[0]["decision"] == "wait" and float(rows[0]["confidence"]) == 58


async def test_bad_answers_exhaust_retries_and_count_as_one_failed_analysis(client, database_url, db):
    row = await insert_signal(db)
    kinds = [
        "confidence_out_of_range",
        "empty_reasoning",
        "missing_data",
        "null_data",
        "unknown_decision",
        "confidence_not_number",
    ]
    started = time.monotonic()
    async with monitor_stack(client, database_url, analysis_retry_initial_seconds=0.2) as m:
        m.proxy.script(row.signal_id, *[Fault.bad_answer(k) for k in kinds])
        m.proxy.script(row.signal_id, Answer.wait(50))
        handle = await m.start(row.signal_id)
        state = await eventually(lambda: _failed(handle), timeout=60)
        assert "LlmProxyBadAnswer" in state.failures[0].error
        sent = m.proxy.requests_for(row.signal_id)
        gaps = [b.monotonic - a.monotonic for a, b in itertools.pairwise(sent)]
        # The worker's interval, doubled each time (0.2, 0.4, 0.8, 1.6, 3.2 s): the same policy
        # shape as production's, only shorter.
        assert len(gaps) == len(kinds) - 1 and all(g >= 0.19 * 2**i for i, g in enumerate(gaps)), gaps
        assert time.monotonic() - started < 30
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: _analysed(handle, 1))
    assert len(m.proxy.requests_for(row.signal_id)) == len(kinds) + 1
    rows = await analyses(db, row.signal_id)
    assert len(rows) == 1 and rows[0]["analysis_number"] == 0


async def _failed(handle) -> MonitorView:
    state = await _state(handle)
    assert state.counts.failed_analyses == 1 and not state.analysing, state
    return state


class FlakyStore(SignalStore):
    """Writes, then dies before Temporal hears of it: the retry must not write a second row."""

    def __init__(self, pool):
        super().__init__(pool)
        self.attempts: list[int] = []

    @activity.defn(name="record_analysis")
    async def record_analysis(self, input: RecordAnalysisInput) -> RecordedAnalysis:
        result = await super().record_analysis(input)
        self.attempts.append(activity.info().attempt)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost after commit (injected)")
        return result


async def test_a_retried_write_does_not_write_twice(client, database_url, db):
    row = await insert_signal(db)
    task_queue = f"tq-{uuid.uuid4().hex[:10]}"
    pool = await create_pool(database_url)
    http = new_http_client(5, 4)
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        proxy.script(
            row.signal_id,
            Answer.wait(50),
            Answer.enter(90, entry=100.0, stop_loss=98.0, take_profit=[104.0]),
        )
        store = FlakyStore(pool)
        llm = LlmProxy(http, proxy.url, TEST_KEY)
        async with (
            Worker(
                client,
                task_queue=task_queue,
                workflows=[SignalMonitorWorkflow],
                # The enter starts the signal's position manager (nobody runs it here: terminated below).
                activities=[
                    store.load_signal,
                    store.record_analysis,
                    store.finish_signal,
                    PositionStarter(client).start_position_manager,
                ],
            ),
            Worker(
                client,
                task_queue=llm_task_queue_for(task_queue),
                activities=[analysis_recorder(llm.analyze_signal, store.record_analysis)],
            ),
        ):
            from intake.starting import start_monitor

            handle = (await start_monitor(client, row.signal_id, task_queue)).handle
            await eventually(lambda: _analysed(handle, 1), timeout=30)
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
            result = await handle.result()
            await client.get_workflow_handle(position_workflow_id_for(row.signal_id)).terminate("test over")
    await http.aclose()
    await pool.close()
    assert result.status == "in_position"
    # Each analysis: the analysis activity's write (left to the workflow once it fails), then the
    # workflow's local write, failing once after its commit and retried.
    assert store.attempts == [1, 1, 2, 1, 1, 2]
    rows = await analyses(db, row.signal_id)
    assert [r["analysis_number"] for r in rows] == [0, 1]
    assert await db.fetchval("SELECT count(*) FROM order_intents WHERE signal_id = $1::uuid", row.signal_id) == 1
    assert len(proxy.requests_for(row.signal_id)) == 2  # the llm-proxy call is not repeated for a retried write
