"""Bring signal rows back in line with monitors that Temporal ended around their code.

Called at the end of every intake sweep (so within SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS plus
visibility lag): it lists this task queue's monitors that closed Terminated, Failed, TimedOut or
Canceled since the last look (the first look goes back SWEEP_MAX_AGE), keeps those whose signal
row is not in an end status, checks each is still the latest run of its workflow id (a reset or
a new start by hand leaves a running successor: nothing to correct) and was started for that
signal (intake/monitor_identity), and marks the row with the
reason read from the close event (intake/monitor_ends). The UPDATE is guarded by the status, so
several intakes, or a monitor finishing at the same moment, never overwrite a real end."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import HistoryEventFilterType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from intake.monitor_ends import SignalEnd, signal_end
from intake.monitor_identity import same_signal, started_for
from runtime import metrics
from workflows.common.names import WORKFLOW_TYPE
from workflows.monitor.models import TERMINAL_SIGNAL_STATUSES

log = logging.getLogger("signal_monitor.reconcile")

FIRST_LOOK_BACK = timedelta(days=7)
# Visibility is eventually consistent: each look re-reads this much before the previous one.
OVERLAP = timedelta(minutes=10)
MAX_PER_SWEEP = 1000
_ENDED_AROUND_THE_CODE = ("Terminated", "Failed", "TimedOut", "Canceled")
_CLOSED = {
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.CANCELED,
}
_PENDING = """SELECT id FROM signals WHERE id = ANY($1::uuid[]) AND status <> ALL($2::text[])"""
# A cancel the intake sent because the signal left (docs/rollout.md) keeps its reason even when
# the monitor's own clean-up never ran.
_MARK = """UPDATE signals SET status = $2, updated_at = now(),
               monitor_reason = CASE WHEN $2 = 'cancelled' AND monitor_leave_reason IS NOT NULL
                                     THEN monitor_leave_reason ELSE $3 END
           WHERE id = $1 AND status <> ALL($4::text[])"""
# Bad data in a row must not stop the intake: logged, and looked at again next time.
_ROW_ERRORS = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError, asyncpg.InsufficientPrivilegeError)


def ended_around_the_code(workflow_type: str, task_queue: str, since: datetime) -> str:
    """The visibility query for this queue's workflows of one type that closed since `since`
    without their own code ending them."""
    statuses = " OR ".join(f"ExecutionStatus = '{s}'" for s in _ENDED_AROUND_THE_CODE)
    return (
        f"WorkflowType = '{workflow_type}' AND TaskQueue = '{task_queue}' AND ({statuses}) "
        f"AND CloseTime >= '{since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"
    )


class Reconciler:
    def __init__(self, task_queue: str):
        self.task_queue = task_queue
        self.since: datetime | None = None
        self.reconciled = metrics.meter().create_counter(
            metrics.PREFIX + "intake_signals_reconciled",
            "signal rows corrected after their monitor ended around its code, by status",
        )

    def query(self, since: datetime) -> str:
        return ended_around_the_code(WORKFLOW_TYPE, self.task_queue, since)

    async def sweep(self, client: Client, conn: asyncpg.Connection) -> int:
        """One look; returns how many rows were corrected. Temporal errors skip the look (the
        next one covers the same window); PostgreSQL connection errors propagate to the intake."""
        started = datetime.now(UTC)
        since = (self.since - OVERLAP) if self.since else started - FIRST_LOOK_BACK
        try:
            ids = await self._closed_monitors(client, since)
        except (RPCError, RuntimeError) as exc:
            log.warning("cannot list ended monitors (%s); next sweep retries", type(exc).__name__)
            return 0
        corrected = 0
        if ids:
            pending = await conn.fetch(_PENDING, list(ids), list(TERMINAL_SIGNAL_STATUSES))
            for row in pending:
                try:
                    corrected += await self._reconcile(client, conn, row["id"])
                except RPCError as exc:
                    log.warning("signal %s: cannot read its monitor (%s); next sweep retries", row["id"], exc.status)
                    return corrected  # the window is looked at again
        self.since = started
        return corrected

    async def _closed_monitors(self, client: Client, since: datetime) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        async for wf in client.list_workflows(self.query(since), limit=MAX_PER_SWEEP):
            try:
                found.add(uuid.UUID(wf.id.removeprefix("signal-")))
            except ValueError:
                continue  # not a monitor's id: nothing of ours to correct
        return found

    async def _reconcile(self, client: Client, conn: asyncpg.Connection, signal_id: uuid.UUID) -> int:
        wid = f"signal-{signal_id}"
        try:
            desc = await client.get_workflow_handle(wid).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return 0
            raise
        if desc.status not in _CLOSED:
            return 0  # a later run (reset, a start by hand) runs or ended through its own code
        if not same_signal(await started_for(client, wid, desc.run_id), str(signal_id)):
            log.info("workflow %s was not started for signal %s: its row is not touched", wid, signal_id)
            return 0
        end = await _end_of(client, wid, desc.run_id)
        if end is None:
            return 0
        try:
            result = await conn.execute(_MARK, signal_id, end.status, end.reason, list(TERMINAL_SIGNAL_STATUSES))
        except _ROW_ERRORS as exc:
            log.warning("signal %s: cannot mark it %s (%s)", signal_id, end.status, type(exc).__name__)
            return 0
        if result.endswith(" 0"):
            return 0
        self.reconciled.add(1, {"status": end.status})
        log.warning("signal %s marked %s: %s", signal_id, end.status, end.reason, extra={"signal_id": str(signal_id)})
        return 1


async def _end_of(client: Client, workflow_id: str, run_id: str) -> SignalEnd | None:
    response = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            history_event_filter_type=HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT,
        )
    )
    events = response.history.events
    return signal_end(events[-1]) if events else None
