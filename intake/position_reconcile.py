"""Positions nobody manages: a position workflow that ended around its code (terminated, failed,
timed out, cancelled) while its position row is still open leaves no stop checked. Each intake
sweep looks for them as it does for monitors (intake/reconcile.py) and reports each once: a warning
naming the position and the way out, and the `intake_positions_unmanaged` counter. It does not
restart them: an operator who terminated a position meant it; `signal-monitor positions` shows
such a position `unmanaged`, and `signal-monitor close <signal>` takes it over and closes it."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError

from intake.reconcile import _CLOSED, FIRST_LOOK_BACK, MAX_PER_SWEEP, OVERLAP, ended_around_the_code
from runtime import metrics
from workflows.common.names import POSITION_WORKFLOW_TYPE

log = logging.getLogger("signal_monitor.reconcile")

_OPEN_ROWS = """SELECT s.id FROM signals s JOIN positions p ON p.signal_id = s.id
                WHERE s.id = ANY($1::uuid[]) AND s.status = 'in_position' AND p.status = 'open'"""


class PositionReconciler:
    def __init__(self, task_queue: str):
        self.task_queue = task_queue
        self.since: datetime | None = None
        self.reported: set[str] = set()  # run ids already reported by this intake
        self.unmanaged = metrics.meter().create_counter(
            metrics.PREFIX + "intake_positions_unmanaged",
            "open positions whose workflow ended around its code (reported once per run), by how it ended",
        )

    def query(self, since: datetime) -> str:
        return ended_around_the_code(POSITION_WORKFLOW_TYPE, self.task_queue, since)

    async def sweep(self, client: Client, conn: asyncpg.Connection) -> list[str]:
        """One look; returns the workflow ids reported this time."""
        started = datetime.now(UTC)
        since = (self.since - OVERLAP) if self.since else started - FIRST_LOOK_BACK
        ended: dict[uuid.UUID, str] = {}
        try:
            async for wf in client.list_workflows(self.query(since), limit=MAX_PER_SWEEP):
                try:
                    ended[uuid.UUID(wf.id.removeprefix("position-"))] = wf.id
                except ValueError:
                    continue
        except (RPCError, RuntimeError) as exc:
            log.warning("cannot list ended positions (%s); next sweep retries", type(exc).__name__)
            return []
        reported: list[str] = []
        try:
            rows = await conn.fetch(_OPEN_ROWS, list(ended)) if ended else []
        except asyncpg.UndefinedTableError:  # no positions table (migration 006 not applied)
            rows = []
        if rows:
            for row in rows:
                wid = ended[row["id"]]
                try:
                    latest = await client.get_workflow_handle(wid).describe()
                except RPCError:
                    continue  # looked at again next sweep
                if latest.status not in _CLOSED or latest.run_id in self.reported:
                    continue  # a later run manages it, or already said
                self.reported.add(latest.run_id)
                how = latest.status.name.lower() if latest.status else "ended"
                self.unmanaged.add(1, {"status": how})
                log.warning(
                    "position %s is open but its workflow %s %s: nobody checks its stop; "
                    "`signal-monitor close %s --reason ...` takes it over and closes it",
                    row["id"], wid, how, row["id"],
                    extra={"signal_id": str(row["id"])},
                )  # fmt: skip
                reported.append(wid)
        self.since = started
        return reported
