"""Which signal a workflow `signal-<id>` was started for: the `signal_id` of its start input.

A hand-made start (`temporal workflow start --workflow-id signal-<C> --input '{"signal_id":
"<B>"}'`) takes C's workflow id for B. Nothing acting in C's name (the operator CLI, the intake's
reconciliation) may then touch C's or B's row through it: both check this first."""

from __future__ import annotations

import uuid

from temporalio.client import Client


def same_signal(started_for: str | None, signal_id: str) -> bool:
    try:
        return started_for is not None and uuid.UUID(started_for) == uuid.UUID(signal_id)
    except ValueError:
        return False


async def started_for(client: Client, workflow_id: str, run_id: str) -> str | None:
    """The signal id in the run's start input (its first event), or None when it has none."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    async for event in handle.fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        if len(payloads) != 1:
            return None
        try:
            (value,) = await client.data_converter.decode(payloads)
        except Exception:  # whatever a hand-made start put there: not a monitor's input
            return None
        signal_id = value.get("signal_id") if isinstance(value, dict) else None
        return signal_id if isinstance(signal_id, str) else None
    return None
