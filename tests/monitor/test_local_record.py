"""`record_analysis` runs as a local activity (patch `record-analysis-local-activity`): one history
marker instead of an activity and a workflow task. What must still hold around it: a cancel that
lands while the write waits on the database cancels the monitor and marks the signal cancelled,
and the analysed candle costs the history no more than issue 16's 12 events."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from fakes.llm_proxy import Answer, always
from tests.helpers.blocking import cancel_while_the_write_waits, in_open_transaction
from tests.helpers.monitor import analysed, monitor_stack
from tests.helpers.support import (
    SignalRow,
    analyses,
    eventually,
    heartbeat_tasks,
    insert_signal,
    kline,
    settled_events,
    signal_status,
)
from workflows.monitor.workflow import SignalMonitorWorkflow


@contextlib.asynccontextmanager
async def _waiting_monitor(client, database_url: str, row: SignalRow) -> AsyncIterator[WorkflowHandle]:
    """A 1m monitor past its first analysis, every answer `wait`, for the block."""
    async with monitor_stack(client, database_url) as m:
        m.proxy.default = always(Answer.wait(55))
        handle = await m.start(row.signal_id)
        await eventually(lambda: analysed(handle, 1))
        yield handle


async def test_cancel_while_the_local_record_waits_on_the_database(client, database_url, db):
    row = await insert_signal(db, interval="1m")
    async with _waiting_monitor(client, database_url, row) as handle:
        # record_analysis takes the signal's row FOR UPDATE inside its transaction.
        lock = "SELECT 1 FROM signals WHERE id = $1 FOR UPDATE"
        await cancel_while_the_write_waits(
            handle,
            database_url,
            lambda blocker: in_open_transaction(blocker, lock, uuid.UUID(row.signal_id)),
            lambda: handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1)),
        )
    assert await signal_status(db, row.signal_id) == "cancelled"
    # A cancel reaches the workflow once the write has ended (the write holds the workflow task;
    # new events arrive at its next heartbeat): the write may have finished first, never twice.
    numbers = [r["analysis_number"] for r in await analyses(db, row.signal_id)]
    assert sorted(numbers) in ([0], [0, 1]), numbers


async def test_an_analysed_candle_costs_twelve_history_events(client, database_url, db):
    row = await insert_signal(db, interval="1m")
    async with _waiting_monitor(client, database_url, row) as handle:
        before = len(await settled_events(handle))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: analysed(handle, 2))
        added = (await settled_events(handle))[before:]
        await handle.terminate("test over")
    # signal, workflow task (3), analysis (3), workflow task (3), record marker, Reanalyses upsert; a
    # write slow enough to need workflow task heartbeats (a busy machine) adds 3 events for each
    kinds = [EventType.Name(e.event_type) for e in added]
    assert len(added) == 12 + 3 * heartbeat_tasks(added), kinds
