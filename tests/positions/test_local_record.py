"""The position's `record_position_decision` runs as a local activity (patch
`position-record-decision-local-activity`): one history marker instead of an activity and a
workflow task. What must still hold around it: a cancel that lands while the write waits on the
database cancels the position and leaves it as it is (no order, the signal still `in_position`),
the decision is written at most once, and a managed candle costs the history no more than issue
16's 12 events."""

from __future__ import annotations

import json
from decimal import Decimal as D

from temporalio.api.enums.v1 import EventType

from fakes.llm_proxy import ManageAnswer
from tests.helpers.blocking import cancel_while_the_write_waits
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import candle, entered_signal, hold_decision_key, position_rows, start_position, view
from tests.helpers.support import (
    eventually,
    heartbeat_tasks,
    settled_events,
    signal_status,
)
from workflows.common.patches import POSITION_LOCAL_RECORD_PATCH
from workflows.position.workflow import PositionManagerWorkflow

SCHEDULED, MARKER = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_MARKER_RECORDED


async def _processed(handle, n: int) -> None:
    state = await view(handle)
    assert state.status == "open" and state.decisions == n and state.queued == 0, state


async def test_a_managed_candle_costs_eleven_history_events(client, database_url, db):
    row = await entered_signal(db)
    async with monitor_stack(client, database_url) as m:
        m.proxy.manage_default = lambda params: ManageAnswer.hold()
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        await eventually(lambda: _processed(handle, 1))
        before = len(await settled_events(handle))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 101, 99, 100.5))
        await eventually(lambda: _processed(handle, 2))
        events = await settled_events(handle)
        added = events[before:]
        await handle.terminate("test over")
    kinds = [EventType.Name(e.event_type) for e in added]
    # signal, workflow task (3), manage-position (3), workflow task (3), record marker; a write slow
    # enough to need workflow task heartbeats (a busy machine) adds 3 events for each
    assert len(added) == 11 + 3 * heartbeat_tasks(added), kinds
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name for e in added if e.event_type == SCHEDULED
    ]
    assert scheduled == ["manage_position"], scheduled
    assert [e.marker_recorded_event_attributes.marker_name for e in added if e.event_type == MARKER] == [
        "core_local_activity"
    ]
    patches = [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in events
        if e.event_type == MARKER and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert POSITION_LOCAL_RECORD_PATCH in patches, patches
    rows = await position_rows(db, row.signal_id)
    assert [d["action"] for d in rows["decisions"]] == ["hold", "hold"]


async def test_cancel_while_the_local_record_waits_on_the_database(client, database_url, db):
    row = await entered_signal(db)
    async with monitor_stack(client, database_url) as m:
        m.proxy.manage_default = lambda params: ManageAnswer.hold()
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _processed(handle, 0))
        k = candle(row, 1, 100, 101, 99, 100)
        await cancel_while_the_write_waits(
            handle,
            database_url,
            lambda blocker: hold_decision_key(blocker, row, k),
            lambda: handle.signal(PositionManagerWorkflow.candle_closed, k),
        )
    # Left as it is: open, the entry its only order, the signal still in_position.
    rows = await position_rows(db, row.signal_id)
    assert rows["positions"][0]["status"] == "open" and len(rows["orders"]) == 1
    assert await signal_status(db, row.signal_id) == "in_position"
    # The cancel reaches the workflow once the write has ended: it may have finished first, never twice.
    assert len(rows["decisions"]) <= 1, rows["decisions"]
