"""`start_position_manager`: the monitor's `enter` starts `position-<signal id>` with the worker's
own Temporal client. An activity, so the start survives the monitor's end (the position is not a
child workflow) and is harmless when repeated (a running manager is reused, an ended one refused)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.common import names
from workflows.monitor.models import StartedPosition, StartPositionInput
from workflows.position.models import PositionManagerInput


async def start_position(client: Client, input: StartPositionInput) -> StartedPosition:
    workflow_id = names.position_workflow_id_for(input.signal_id)
    try:
        handle = await client.start_workflow(
            names.POSITION_WORKFLOW_TYPE,
            PositionManagerInput(
                signal_id=input.signal_id, entry_price=input.entry_price, entry_candle_t=input.entry_candle_t
            ),
            id=workflow_id,
            task_queue=input.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        return StartedPosition(workflow_id=workflow_id, started=False)
    started = bool(getattr(handle._start_workflow_response, "started", True))
    return StartedPosition(workflow_id=workflow_id, started=started)


class PositionStarter:
    def __init__(self, client: Client):
        self._client = client

    @activity.defn(name=names.START_POSITION_ACTIVITY)
    async def start_position_manager(self, input: StartPositionInput) -> StartedPosition:
        return await start_position(self._client, input)
