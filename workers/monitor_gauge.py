"""`signal_monitor_monitors_running`: how many monitors are running on this worker's task queue.

Counted by Temporal visibility every `SIGNAL_MONITOR_RUNNING_REFRESH_SECONDS` (default 15,
`Settings.running_refresh_seconds`), not
from workflow code: a workflow-side gauge would only see the workflows cached on one worker and
would go stale when a workflow ends on another. The count is cluster-wide for the task queue, so
every worker reports the same value: aggregate with max(), not sum(). It costs one CountWorkflow
call per period."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client

from runtime import metrics
from workflows.common.names import POSITION_WORKFLOW_TYPE, WORKFLOW_TYPE

log = logging.getLogger(__name__)


async def publish_running_monitors(client: Client, task_queue: str, every: float) -> None:
    """Runs until cancelled. A failed count leaves the last value and is retried next period."""
    gauge = (
        metrics.meter()
        .create_gauge(
            metrics.PREFIX + "monitors_running", "running signal monitors on this task queue (from Temporal visibility)"
        )
        .with_additional_attributes({"task_queue": task_queue})
    )
    positions = (
        metrics.meter()
        .create_gauge(
            metrics.PREFIX + "positions_running",
            "running position managers on this task queue (from Temporal visibility)",
        )
        .with_additional_attributes({"task_queue": task_queue})
    )
    running = f"ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}'"
    query = f"WorkflowType = '{WORKFLOW_TYPE}' AND {running}"
    position_query = f"WorkflowType = '{POSITION_WORKFLOW_TYPE}' AND {running}"
    while True:
        try:
            gauge.set((await client.count_workflows(query)).count)
            positions.set((await client.count_workflows(position_query)).count)
        except Exception as exc:  # a visibility hiccup must never stop the worker
            log.warning("could not count running monitors: %s", exc)
        await asyncio.sleep(every)
