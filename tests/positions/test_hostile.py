"""Hostile input to PositionManagerWorkflow (issue 13, with the monitor's rules of issue 11):
whatever arrives through a signal, a start, an Update or a query, the position takes it, counts
and ignores it, refuses it, or (for a start it cannot use) fails the workflow at once with a clear
message; never a workflow task failing over and over, never an order it did not decide. Sent the
way an operator would, through the stock `temporal` CLI."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from fakes.llm_proxy import ManageAnswer
from tests.helpers.fault_checks import (
    assert_hostile_counts,
    assert_no_task_failed,
    send_hostile_input,
    workflow_cli,
    workflow_events,
)
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import candle, entered_signal, position_rows, result_of, start_position, view
from tests.helpers.processes import as_json, command_env, temporal_cli
from tests.helpers.support import eventually, signal_status
from workflows.common import names
from workflows.position.models import PositionView
from workflows.position.workflow import PositionManagerWorkflow


async def _idle(handle, decisions: int) -> PositionView:
    state = await view(handle)
    assert state.status == "open" and state.decisions == decisions and state.queued == 0, state
    return state


async def test_bad_signals_updates_and_queries_never_wedge_a_position(client, database_url, db, temporal_address):
    env = command_env(temporal_address)
    row = await entered_signal(db, stop_loss=90.0, take_profits=[150.0])
    workflow_id = names.position_workflow_id_for(row.signal_id)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(row.signal_id, ManageAnswer.hold(), ManageAnswer.hold())
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _idle(handle, 0), timeout=30)

        cli = workflow_cli(env, workflow_id)
        good = candle(row, 1, 100, 101, 99, 100)
        # Updates with no input, two inputs, junk or impossible levels are refused and leave
        # nothing in history. A query with junk arguments still answers.
        malformed = await send_hostile_input(
            cli,
            lambda k: handle.signal(PositionManagerWorkflow.candle_closed, k),
            good,
            [
                ["--name", "close"],
                ["--name", "close", "--input", "42"],
                ["--name", "close", "--input", '"   "'],
                ["--name", "close", "--input", '"a"', "--input", '"b"'],
                ["--name", "set_stop_loss"],
                ["--name", "set_stop_loss", "--input", '"abc"'],
                ["--name", "set_stop_loss", "--input", '{"stop_loss": 95, "extra": 1}'],
                ["--name", "set_stop_loss", "--input", "-5"],
                ["--name", "set_stop_loss", "--input", '"NaN"'],
                ["--name", "set_take_profit", "--input", "[]"],
                ["--name", "set_take_profit", "--input", '["x"]'],
                ["--name", "set_take_profit", "--input", '{"take_profit": "Infinity"}'],
            ],
        )

        await assert_hostile_counts(_idle(handle, 0), malformed)
        # The closes from the future moved nothing: the real ones after them are managed.
        await handle.signal(PositionManagerWorkflow.candle_closed, good)
        await eventually(lambda: _idle(handle, 1), timeout=30)
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 102, 99, 101))
        await eventually(lambda: _idle(handle, 2), timeout=30)
        # Bare values are what operators type: a stop as a number, a reason as a string.
        await cli("update", "execute", "--name", "set_stop_loss", "--input", "96.5")
        assert (await view(handle)).stop_loss == D("96.5")
        await cli("update", "execute", "--name", "close", "--input", '"desk closes the book"')
        result = await result_of(handle)
    assert result.status == "closed" and result.reason == "operator: closed by operator: desk closes the book"
    events = await workflow_events(client, workflow_id, every_run=True)
    assert_no_task_failed(events)
    assert events.count("workflow_execution_update_accepted_event_attributes") == 2
    rows = await position_rows(db, row.signal_id)
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]
    assert [d["candle_open_time"].timestamp() * 1000 for d in rows["decisions"]] == [
        good["t"],
        candle(row, 2, 0, 0, 0, 0)["t"],
    ]
    assert await signal_status(db, row.signal_id) == "closed"


@pytest.mark.parametrize(
    "inputs",
    [
        ["{}"],
        ['{"signal_id": 123}'],
        ['{"signal_id": "not-a-uuid"}'],
        ["[1,2]"],
        ["null"],
        ['{"signal_id": "SIGNAL", "state": 5}'],
        ['{"signal_id": "SIGNAL", "state": {"signal_id": "00000000-0000-4000-8000-000000000000"}}'],
        ['{"signal_id": "SIGNAL", "entry_price": "-1"}'],
        ['{"signal_id": "SIGNAL", "surprise": true}'],
        [],
        ['{"signal_id": "SIGNAL"}', '{"signal_id": "SIGNAL"}'],
    ],
    ids=[
        "empty-object",
        "number-id",
        "not-a-uuid",
        "list",
        "null",
        "state-5",
        "state-of-another-signal",
        "negative-entry",
        "unknown-field",
        "no-input",
        "two-inputs",
    ],
)
async def test_a_start_it_cannot_use_fails_the_position_at_once(client, database_url, db, temporal_address, inputs):
    env = command_env(temporal_address)
    row = await entered_signal(db)
    workflow_id = names.position_workflow_id_for(row.signal_id)
    async with monitor_stack(client, database_url) as m:
        args = ["workflow", "start", "--type", names.POSITION_WORKFLOW_TYPE, "--task-queue", m.task_queue]
        args += ["--workflow-id", workflow_id]
        for raw in inputs:
            args += ["--input", raw.replace("SIGNAL", row.signal_id)]
        await temporal_cli(env, *args)
        handle = client.get_workflow_handle(workflow_id)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == names.INVALID_START, cause
    assert "signal_id" in cause.message and names.POSITION_WORKFLOW_TYPE in cause.message
    events = await workflow_events(client, workflow_id, every_run=True)
    assert_no_task_failed(events)
    assert "activity_task_scheduled_event_attributes" not in events
    assert await signal_status(db, row.signal_id) == "in_position"
    assert (await position_rows(db, row.signal_id))["orders"] == []


async def test_a_position_id_not_matching_its_signal_touches_nothing(client, database_url, db, temporal_address):
    env = command_env(temporal_address)
    b, c = await entered_signal(db), await entered_signal(db)
    workflow_id = names.position_workflow_id_for(c.signal_id)
    async with monitor_stack(client, database_url) as m:
        await temporal_cli(
            env,
            *("workflow", "start", "--type", names.POSITION_WORKFLOW_TYPE, "--task-queue", m.task_queue),
            *("--workflow-id", workflow_id, "--input", as_json({"signal_id": b.signal_id})),
        )
        handle = client.get_workflow_handle(workflow_id)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == names.WRONG_WORKFLOW_ID
    assert names.position_workflow_id_for(b.signal_id) in cause.message
    events = await workflow_events(client, workflow_id, every_run=True)
    assert "activity_task_scheduled_event_attributes" not in events
    assert_no_task_failed(events)
    for r in (b, c):
        assert await signal_status(db, r.signal_id) == "in_position"
        assert (await position_rows(db, r.signal_id))["orders"] == []
