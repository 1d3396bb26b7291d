"""Replay: the current PositionManagerWorkflow must reproduce every position history recorded from
real test runs (tests/histories/positions/, `SIGNAL_MONITOR_RECORD_HISTORIES=tests/histories pytest
tests/test_positions.py tests/test_positions_durable.py`)."""

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

from workflows.names import POSITION_WORKFLOW_TYPE
from workflows.position_manager import PositionManagerWorkflow
from workflows.position_models import PositionResult

HISTORIES = sorted((Path(__file__).parent / "histories" / "positions").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    # The workflow checks its id against its input (position-<signal id>): replay under the real id.
    text = path.read_text()
    started = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
    signal_id = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))["signal_id"]
    return WorkflowHistory.from_json(f"position-{signal_id}", text)


def test_histories_cover_the_ends_and_messages():
    events = [e for p in HISTORIES for e in json.loads(p.read_text())["events"]]
    kinds = {e["eventType"].removeprefix("EVENT_TYPE_") for e in events}
    assert {
        "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    } <= kinds
    reasons = {
        json.loads(base64.b64decode(e["workflowExecutionCompletedEventAttributes"]["result"]["payloads"][0]["data"]))[
            "reason"
        ].split(":")[0]
        for e in events
        if "workflowExecutionCompletedEventAttributes" in e
    }
    assert {"stop_loss", "take_profit", "trailing_stop", "close_action", "operator"} <= reasons


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_position_history_replays(path: Path):
    replayer = Replayer(workflows=[PositionManagerWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(_history(path))


@workflow.defn(name=POSITION_WORKFLOW_TYPE, sandboxed=False)
class UnpatchedChange(PositionManagerWorkflow):
    @workflow.init
    def __init__(self, input: object) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: object) -> PositionResult:
        await workflow.sleep(1)
        return await super().run(input)


async def test_an_unpatched_change_is_caught():
    replayer = Replayer(workflows=[UnpatchedChange], data_converter=pydantic_data_converter)
    path = next(p for p in HISTORIES if "partial_take_profit" in p.name)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(path))
