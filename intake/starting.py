"""Starting a monitor: idempotent, whoever calls it (CLI, intake, tests)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.common.names import workflow_id_for
from workflows.monitor.models import SignalMonitorInput
from workflows.monitor.workflow import SignalMonitorWorkflow


def monitor_summary(symbol: str | None, interval: str | None, trader_name: str | None, trader_id: object) -> str:
    """The workflow's one-line summary in the Temporal UI's list (symbol, interval, trader)."""
    return f"{symbol} {interval} · trader {trader_name or trader_id}"


@dataclass
class StartOutcome:
    handle: WorkflowHandle
    started: bool
    """False when a monitor for this signal was already running, or had already ended."""
    ended_before: bool = False


async def start_monitor(client: Client, signal_id: str, task_queue: str, summary: str | None = None) -> StartOutcome:
    signal_id = str(uuid.UUID(signal_id))  # ValueError on a bad id, before anything reaches Temporal
    workflow_id = workflow_id_for(signal_id)
    try:
        handle = await client.start_workflow(
            SignalMonitorWorkflow.run,
            SignalMonitorInput(signal_id=signal_id),
            id=workflow_id,
            task_queue=task_queue,
            # A second start of a running monitor returns it; one of an ended monitor is refused
            # (a fresh run would re-analyse a signal that has already decided).
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=summary,
        )
    except WorkflowAlreadyStartedError:
        return StartOutcome(
            client.get_workflow_handle_for(SignalMonitorWorkflow.run, workflow_id), started=False, ended_before=True
        )
    response = handle._start_workflow_response  # the server says whether it started a run
    started = bool(getattr(response, "started", True))
    return StartOutcome(handle, started=started)


async def start_again(client: Client, signal_id: str, task_queue: str, summary: str | None = None) -> WorkflowHandle:
    """A new run under the same workflow id after the earlier one ended (the signal was reset
    from `failed`); refused while a run is still going."""
    signal_id = str(uuid.UUID(signal_id))
    return await client.start_workflow(
        SignalMonitorWorkflow.run,
        SignalMonitorInput(signal_id=signal_id),
        id=workflow_id_for(signal_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        static_summary=summary,
    )
