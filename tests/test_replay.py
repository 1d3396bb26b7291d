"""Replay: the current SignalMonitorWorkflow code must reproduce every history recorded from real
runs (tests/histories/, exported from the test suite's own runs with
`SIGNAL_MONITOR_RECORD_HISTORIES=tests/histories pytest ...`). A change to the workflow that running
executions would replay differently must go behind `workflow.patched(...)` or this test fails."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from workflows.models import MonitorResult, SignalMonitorInput
from workflows.names import WORKFLOW_TYPE
from workflows.signal_monitor import SignalMonitorWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_cover_every_end_and_message():
    events = [e for p in HISTORIES for e in json.loads(p.read_text())["events"]]
    kinds = {e["eventType"].removeprefix("EVENT_TYPE_") for e in events}
    assert {"WORKFLOW_EXECUTION_CANCELED", "WORKFLOW_EXECUTION_CONTINUED_AS_NEW", "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_EXECUTION_UPDATE_COMPLETED", "WORKFLOW_EXECUTION_FAILED"} <= kinds
    results = [
        json.loads(base64.b64decode(e["workflowExecutionCompletedEventAttributes"]["result"]["payloads"][0]["data"]))
        for e in events
        if "workflowExecutionCompletedEventAttributes" in e
    ]
    assert {"in_position", "expired", "failed"} <= {r["status"] for r in results}
    updates = {e["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"]["name"]
               for e in events if "workflowExecutionUpdateAcceptedEventAttributes" in e}
    assert {"abandon", "set_limit", "reanalyze"} <= updates


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    replayer = Replayer(workflows=[SignalMonitorWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(_history(path))


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class UnpatchedChange(SignalMonitorWorkflow):
    """What a careless edit looks like: one more timer before loading the signal, no patch."""

    @workflow.init
    def __init__(self, input: SignalMonitorInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: SignalMonitorInput) -> MonitorResult:
        await workflow.sleep(1)
        return await super().run(input)


async def test_an_unpatched_change_is_caught():
    replayer = Replayer(workflows=[UnpatchedChange], data_converter=pydantic_data_converter)
    path = next(p for p in HISTORIES if p.name.startswith("test_wait_wait_enter"))
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(path))
