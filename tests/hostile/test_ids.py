"""One workflow per signal whatever the spelling of its id (issue 26, case 4): a start by hand with
the stock `temporal` CLI under `signal-<spelling>` / `position-<spelling>` with that same spelling as
input (upper case, braces, no dashes, `urn:uuid:`) fails at once with WrongWorkflowId, runs no
activity and writes nothing; the canonical id still runs."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.helpers.fault_checks import assert_three_checks
from tests.helpers.monitor import analysed, monitor_stack
from tests.helpers.positions import entered_signal, position_rows
from tests.helpers.processes import as_json, command_env, temporal_cli
from tests.helpers.support import analyses, eventually, insert_signal, signal_status
from workflows.common import names


def spellings(signal_id: str) -> list[str]:
    return [signal_id.upper(), "{" + signal_id + "}", signal_id.replace("-", ""), "urn:uuid:" + signal_id]


async def _refused(client: Client, workflow_id: str) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 20)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == names.WRONG_WORKFLOW_ID, cause
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert (
        "activity_task_scheduled_event_attributes" not in kinds and "workflow_task_failed_event_attributes" not in kinds
    )
    return cause


async def test_any_spelling_of_a_signal_id_maps_to_its_one_monitor(client, database_url, db, temporal_address):
    env = command_env(temporal_address)
    row = await insert_signal(db, interval="1m")
    async with monitor_stack(client, database_url) as m:
        for spelling in spellings(row.signal_id):
            workflow_id = names.workflow_id_for(spelling)
            await temporal_cli(
                env,
                *("workflow", "start", "--type", names.WORKFLOW_TYPE, "--task-queue", m.task_queue),
                *("--workflow-id", workflow_id, "--input", as_json({"signal_id": spelling})),
            )
            m.started.append(client.get_workflow_handle(workflow_id))  # kept for the replay tests
            cause = await _refused(client, workflow_id)
            assert f"its one workflow is 'signal-{row.signal_id}'" in cause.message
        assert await signal_status(db, row.signal_id) == "new"
        assert await analyses(db, row.signal_id) == [] and m.proxy.requests_for(row.signal_id) == []
        # The canonical id runs: one monitor, one analysis #0.
        handle = await m.start(row.signal_id)
        await eventually(lambda: analysed(handle, 1), timeout=30)
        await assert_three_checks(
            client, db, "hostile ids: signal-<UPPER>, {braces}, no dashes, urn:uuid: by hand", {row.signal_id: []}
        )
    assert len(await analyses(db, row.signal_id)) == 1


async def test_any_spelling_of_a_position_id_maps_to_its_one_position(client, database_url, db, temporal_address):
    env = command_env(temporal_address)
    row = await entered_signal(db)
    async with monitor_stack(client, database_url) as m:
        for spelling in spellings(row.signal_id):
            workflow_id = names.position_workflow_id_for(spelling)
            await temporal_cli(
                env,
                *("workflow", "start", "--type", names.POSITION_WORKFLOW_TYPE, "--task-queue", m.task_queue),
                *("--workflow-id", workflow_id, "--input", as_json({"signal_id": spelling})),
            )
            cause = await _refused(client, workflow_id)
            assert f"'position-{row.signal_id}'" in cause.message
    assert await signal_status(db, row.signal_id) == "in_position"
    rows = await position_rows(db, row.signal_id)
    assert rows["orders"] == [] and rows["decisions"] == []
