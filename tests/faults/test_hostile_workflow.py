"""Fault suite, hostile input to the workflow itself (issue 11): whatever arrives through a signal,
a start, an Update or a query, the monitor takes it, counts and ignores it, or (for a start it
cannot use) fails the workflow at once with a clear message; never a workflow task failing over
and over. Bad rows reported by the activities (`InvalidSignalData`, `PermanentDatabaseError`) end
the signal `failed` at once. Sent the way an operator would, through the stock `temporal` CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.signals_db import SignalStore
from fakes.llm_proxy import Answer
from tests.helpers.fault_checks import (
    Expectation,
    assert_hostile_counts,
    assert_no_task_failed,
    assert_three_checks,
    send_hostile_input,
    workflow_cli,
    workflow_events,
)
from tests.helpers.monitor import RECORD_HISTORIES_ENV, analysis_recorder, idle_monitor, monitor_stack, save_histories
from tests.helpers.processes import as_json, command_env, temporal_cli
from tests.helpers.support import analyses, eventually, insert_signal, kline, signal_status
from workflows.common import names
from workflows.monitor.models import (
    Analysis,
    AnalyzeSignalInput,
    FinishedSignal,
    FinishSignalInput,
    LoadSignalInput,
    MonitorResult,
    RecordAnalysisInput,
    RecordedAnalysis,
    SignalContext,
)
from workflows.monitor.workflow import SignalMonitorWorkflow


async def test_bad_signals_updates_and_queries_never_wedge_a_monitor(client, database_url, db, temporal_address):
    env = command_env(temporal_address)
    row = await insert_signal(db, interval="1m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(50), Answer.wait(51), Answer.wait(52))
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_monitor(handle, 1), timeout=30)

        cli = workflow_cli(env, row.workflow_id)
        good = kline(row, 1)
        # 1. no input (the UI's empty "Send Signal"), two inputs, implausible klines; 3. the future;
        # 11. a valid kline carrying a large extra field: counted, never kept. Updates with no
        # input, two inputs or junk are refused and leave nothing in history. A query with junk
        # arguments still answers.
        malformed = await send_hostile_input(
            cli,
            lambda k: handle.signal(SignalMonitorWorkflow.candle_closed, k),
            good,
            [
                ["--name", "set_limit"],
                ["--name", "set_limit", "--input", "7", "--input", "8"],
                ["--name", "abandon"],
                ["--name", "abandon", "--input", "42"],
                ["--name", "reanalyze", "--input", "5"],
                ["--name", "set_limit", "--input", '"7"'],
            ],
        )

        await assert_hostile_counts(idle_monitor(handle, 1), malformed)
        # The closes from the future moved nothing: the real ones after them are analysed.
        await handle.signal(SignalMonitorWorkflow.candle_closed, good)
        await eventually(lambda: idle_monitor(handle, 2), timeout=30)
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        state = await eventually(lambda: idle_monitor(handle, 3), timeout=30)
        assert state.max_reanalyses == 10
        events = await workflow_events(client, row.workflow_id)
        assert_no_task_failed(events)
        assert "workflow_execution_update_accepted_event_attributes" not in events
        fig = await assert_three_checks(
            client,
            db,
            "hostile: signals with no/two inputs, out-of-range, future, non-finite, oversized; junk Updates",
            [Expectation(row.signal_id, {good["t"], kline(row, 2)["t"]})],
        )
    assert fig.lost == 0 and fig.duplicates == 0 and fig.stuck == 0
    assert [r["analysis_number"] for r in await analyses(db, row.signal_id)] == [0, 1, 2]


@pytest.mark.parametrize(
    "inputs",
    [
        ["{}"],
        ['{"signal_id": 123}'],
        ["[1,2]"],
        ["null"],
        ['{"signal_id": "SIGNAL", "carried": 5}'],
        [],
        ['{"signal_id": "SIGNAL"}', '{"signal_id": "SIGNAL"}'],
    ],
    ids=["empty-object", "number-id", "list", "null", "carried-5", "no-input", "two-inputs"],
)
async def test_a_start_it_cannot_use_fails_the_workflow_at_once(client, database_url, db, temporal_address, inputs):
    env = command_env(temporal_address)
    row = await insert_signal(db, interval="1m")
    async with monitor_stack(client, database_url) as m:
        args = ["workflow", "start", "--type", names.WORKFLOW_TYPE, "--task-queue", m.task_queue]
        args += ["--workflow-id", row.workflow_id]
        for raw in inputs:
            args += ["--input", raw.replace("SIGNAL", row.signal_id)]
        await temporal_cli(env, *args)
        handle = client.get_workflow_handle(row.workflow_id)
        m.started.append(handle)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == names.INVALID_START, cause
    assert "signal_id" in cause.message
    events = await workflow_events(client, row.workflow_id)
    assert_no_task_failed(events)
    assert "activity_task_scheduled_event_attributes" not in events
    assert await signal_status(db, row.signal_id) == "new"


async def test_a_workflow_id_not_matching_its_signal_touches_nothing(client, database_url, db, temporal_address):
    env = command_env(temporal_address)
    b, c = await insert_signal(db, interval="1m"), await insert_signal(db, interval="1m")
    async with monitor_stack(client, database_url) as m:
        await temporal_cli(
            env,
            *("workflow", "start", "--type", names.WORKFLOW_TYPE, "--task-queue", m.task_queue),
            *("--workflow-id", c.workflow_id, "--input", as_json({"signal_id": b.signal_id})),
        )
        handle = client.get_workflow_handle(c.workflow_id)
        m.started.append(handle)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == names.WRONG_WORKFLOW_ID
    assert b.workflow_id in cause.message
    events = await workflow_events(client, c.workflow_id)
    assert "activity_task_scheduled_event_attributes" not in events
    assert_no_task_failed(events)
    for r in (b, c):
        assert await signal_status(db, r.signal_id) == "new"
        assert await analyses(db, r.signal_id) == []


class _Refusing:
    """The real database activities, refusing chosen signals the way the activities report rows
    they cannot use (hostile branch: InvalidSignalData) and permanent database errors (platform
    branch: PermanentDatabaseError). The writes that do happen are the real ones."""

    def __init__(self, store: SignalStore):
        self.store = store
        self.refusals: dict[tuple[str, str], tuple[str, str]] = {}
        self.attempts: dict[tuple[str, str], int] = {}

    def refuse(self, call: str, signal_id: str, message: str, error_type: str) -> None:
        self.refusals[(call, signal_id)] = (message, error_type)

    def _attempt(self, call: str, signal_id: str) -> None:
        """Counts the call, and fails it non-retryably where the test chose to refuse it."""
        key = (call, signal_id)
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if key in self.refusals:
            message, error_type = self.refusals[key]
            raise ApplicationError(message, type=error_type, non_retryable=True)

    @activity.defn(name=names.LOAD_SIGNAL)
    async def load_signal(self, input: LoadSignalInput) -> SignalContext:
        self._attempt("load", input.signal_id)
        return await self.store.load_signal(input)

    @activity.defn(name=names.RECORD_ANALYSIS)
    async def record_analysis(self, input: RecordAnalysisInput) -> RecordedAnalysis:
        self._attempt("record", input.signal_id)
        return await self.store.record_analysis(input)

    @activity.defn(name=names.FINISH_SIGNAL)
    async def finish_signal(self, input: FinishSignalInput) -> FinishedSignal:
        self._attempt("finish", input.signal_id)
        return await self.store.finish_signal(input)


@activity.defn(name=names.ANALYZE_SIGNAL)
async def _wait_answer(input: AnalyzeSignalInput) -> Analysis:
    return Analysis(decision="wait", confidence=50, reasoning="nothing yet", latency_ms=1)


@contextlib.asynccontextmanager
async def _refusing_worker(client: Client, database_url: str) -> AsyncIterator[tuple[_Refusing, str]]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    acts = _Refusing(SignalStore(pool))
    queue = f"tq-refusing-{uuid.uuid4().hex[:8]}"
    main = Worker(
        client,
        task_queue=queue,
        workflows=[SignalMonitorWorkflow],
        activities=[acts.load_signal, acts.record_analysis, acts.finish_signal],
    )
    recorder = analysis_recorder(_wait_answer, acts.record_analysis)
    llm = Worker(client, task_queue=names.llm_task_queue_for(queue), activities=[recorder])
    try:
        async with main, llm:
            yield acts, queue
    finally:
        await pool.close()


async def test_unusable_rows_and_permanent_database_errors_end_the_signal_at_once(client, database_url, db):
    bad_row = await insert_signal(db, interval="1m")
    bad_write = await insert_signal(db, interval="1m")
    unwritable = await insert_signal(db, interval="1m", with_trader=False)
    async with _refusing_worker(client, database_url) as (acts, queue):
        acts.refuse(
            "load", bad_row.signal_id, f"signal {bad_row.signal_id} has a NULL timestamp", names.INVALID_SIGNAL_DATA
        )
        acts.refuse(
            "record",
            bad_write.signal_id,
            'value too long for type character varying(10) (column "decision")',
            names.PERMANENT_DATABASE_ERROR,
        )
        acts.refuse(
            "finish", unwritable.signal_id, "permission denied for table signals", names.PERMANENT_DATABASE_ERROR
        )
        handles = [
            await client.start_workflow(
                SignalMonitorWorkflow.run,
                {"signal_id": r.signal_id},
                id=r.workflow_id,
                task_queue=queue,
                execution_timeout=timedelta(minutes=2),
            )
            for r in (bad_row, bad_write, unwritable)
        ]
        loaded, recorded = [await asyncio.wait_for(h.result(), 20) for h in handles[:2]]
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handles[2].result(), 20)
        if RECORD_HISTORIES_ENV in os.environ:
            await save_histories(client, handles, Path(os.environ[RECORD_HISTORIES_ENV]))
    loaded, recorded = MonitorResult.model_validate(loaded), MonitorResult.model_validate(recorded)
    assert (loaded.status, loaded.reason) == ("failed", f"signal {bad_row.signal_id} has a NULL timestamp")
    assert loaded.analyses == 0
    assert recorded.status == "failed" and "value too long" in recorded.reason
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == names.PERMANENT_DATABASE_ERROR
    assert cause.message == "permission denied for table signals"
    # Non-retryable: each refused call ran once, never an unbounded retry (the write once in the
    # analysis activity, which leaves a failed write to the workflow, and once by the workflow).
    assert acts.attempts[("load", bad_row.signal_id)] == 1
    assert acts.attempts[("record", bad_write.signal_id)] == 2
    assert acts.attempts[("finish", unwritable.signal_id)] == 1
    for r, status in ((bad_row, "failed"), (bad_write, "failed")):
        assert await signal_status(db, r.signal_id) == status
    reason = await db.fetchval("SELECT monitor_reason FROM signals WHERE id = $1::uuid", bad_row.signal_id)
    assert reason == loaded.reason
    for h in handles:
        assert_no_task_failed(await workflow_events(client, h.id))
