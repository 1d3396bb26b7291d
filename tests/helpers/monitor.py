"""A worker running in this process against the session's Temporal server, PostgreSQL and a
fresh fake llm-proxy: one per test, on its own task queue, so tests never share pollers."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.decide_and_record import DecisionRecorder
from fakes.llm_proxy import FakeLlmProxy
from intake.starting import start_monitor
from runtime.config import Settings
from workers.worker import running_worker
from workflows.monitor.models import (
    Analysis,
    AnalyzeSignalInput,
    MonitorResult,
    MonitorView,
    RecordAnalysisInput,
    RecordedAnalysis,
)
from workflows.monitor.workflow import SignalMonitorWorkflow

TEST_KEY = "sk-test-" + uuid.uuid4().hex
# Set to a directory to keep the histories of every monitor the tests run (see tests/monitor/test_replay.py).
RECORD_HISTORIES_ENV = "SIGNAL_MONITOR_RECORD_HISTORIES"


def make_settings(database_url: str, proxy_url: str, task_queue: str, **overrides: Any) -> Settings:
    # Settings' own fields, each typed there; overrides may name any of them
    values: dict[str, Any] = dict(
        database_url=database_url,
        llm_proxy_url=proxy_url,
        llm_proxy_key=TEST_KEY,
        task_queue=task_queue,
        llm_max_concurrent=8,
        llm_max_per_second=None,
        llm_queue_max_per_second=None,
        llm_timeout_seconds=5.0,
        max_cached_workflows=100,
        db_pool_size=4,
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class Monitor:
    client: Client
    proxy: FakeLlmProxy
    settings: Settings
    started: list[WorkflowHandle] = field(default_factory=list)

    @property
    def task_queue(self) -> str:
        return self.settings.task_queue

    async def start(self, signal_id: str) -> WorkflowHandle[SignalMonitorWorkflow, MonitorResult]:
        outcome = await start_monitor(self.client, signal_id, self.task_queue)
        self.started.append(outcome.handle)
        return outcome.handle

    async def save_histories(self, directory: Path) -> None:
        await save_histories(self.client, self.started, directory)


async def save_histories(client: Client, started: list[WorkflowHandle], directory: Path) -> None:
    """Every run of these monitors, as JSON, for tests/monitor/test_replay.py."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "run").split("::")[-1].split(" ")[0]
    test = test.replace("[", "-").replace("]", "")  # a parametrized case's id
    directory.mkdir(parents=True, exist_ok=True)
    for n, handle in enumerate(started):
        for run_id in await _run_ids(client, handle.id):
            history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
            if not any(e.HasField("workflow_task_completed_event_attributes") for e in history.events):
                continue  # a run that has not run any code yet has nothing to replay
            name = f"{test}-{n}-{run_id[-8:]}.json"
            (directory / name).write_text(history.to_json())


async def _run_ids(client: Client, workflow_id: str) -> list[str]:
    """Every run of the workflow; on the time-skipping test server, which cannot list, its latest."""
    try:
        return [e.run_id async for e in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        return [(await client.get_workflow_handle(workflow_id).describe()).run_id]


@contextlib.asynccontextmanager
async def monitor_stack(
    client: Client, database_url: str, proxy: FakeLlmProxy | None = None, **overrides
) -> AsyncIterator[Monitor]:
    own_proxy = proxy is None
    proxy = proxy or FakeLlmProxy(api_key=TEST_KEY)
    if own_proxy:
        await proxy.start()
    settings = make_settings(database_url, proxy.url, f"tq-{uuid.uuid4().hex[:10]}", **overrides)
    try:
        async with running_worker(client, settings):
            monitor = Monitor(client, proxy, settings)
            yield monitor
            if RECORD_HISTORIES_ENV in os.environ:
                await monitor.save_histories(Path(os.environ[RECORD_HISTORIES_ENV]))
    finally:
        if own_proxy:
            await proxy.stop()


async def monitor_state(handle: WorkflowHandle) -> MonitorView:
    return await handle.query(SignalMonitorWorkflow.state)


async def analysed(handle: WorkflowHandle, n: int) -> MonitorView:
    """`n` analyses done (the first included) and none running."""
    state = await monitor_state(handle)
    assert state.analyses == n and not state.analysing, state
    return state


async def idle_monitor(handle: WorkflowHandle, analysed: int) -> MonitorView:
    """The monitor waits for a candle with `analysed` analyses done: none running, none pending."""
    state = await monitor_state(handle)
    assert state.counts.analysed == analysed and not state.analysing and state.pending_candle is None, state
    return state


async def failed_analyses(handle: WorkflowHandle, failed: int) -> MonitorView:
    """`failed` analyses have failed and none is running."""
    state = await monitor_state(handle)
    assert state.counts.failed_analyses == failed and not state.analysing, state.counts
    return state


async def _no_position(request: object) -> Any:
    raise AssertionError("this test runs no position")


def analysis_recorder(
    analyze: Callable[[AnalyzeSignalInput], Awaitable[Analysis]],
    record: Callable[[RecordAnalysisInput], Awaitable[RecordedAnalysis]],
) -> Callable[..., Any]:
    """`analyze_and_record_signal` for a hand-built `-llm` worker of a test that runs monitors only."""
    return DecisionRecorder(analyze, record, _no_position, _no_position).analyze_and_record_signal
