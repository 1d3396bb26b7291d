"""Where a managed candle's decision row is written. A `hold` is written by the activity that asked
(`manage_and_record_position`, patch `position-manage-activity-records-a-hold`): 10 history events,
no local activity. Any other action places or changes its orders first, and the workflow writes its
row with the local `record_position_decision` (patch `position-record-decision-local-activity`), as
it writes a hold whose write was slow or failed in the activity (the answer already in history: the
model is not asked again). Around both: a cancel that lands while the write waits on the database
cancels the position and leaves it as it is (no order, the signal still `in_position`), and the
decision is written at most once."""

from __future__ import annotations

import json
from decimal import Decimal as D

import asyncpg
from temporalio.api.enums.v1 import EventType

from bench.history import local_activity_type
from fakes.llm_proxy import ManageAnswer
from tests.helpers.blocking import cancel_while_the_write_waits
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import (
    candle,
    entered_signal,
    hold_decision_key,
    keep_histories,
    position_rows,
    start_position,
    view,
)
from tests.helpers.support import (
    completed_activities,
    eventually,
    left_to_the_workflow,
    settled_events,
    signal_status,
)
from workflows.common import names
from workflows.common.patches import POSITION_HOLD_RECORDED_BY_CALL_PATCH
from workflows.position.workflow import PositionManagerWorkflow

SCHEDULED, MARKER = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_MARKER_RECORDED


async def _processed(handle, n: int) -> None:
    state = await view(handle)
    assert state.status == "open" and state.decisions == n and state.queued == 0, state


def _scheduled(events: list) -> list[str]:
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in events if e.event_type == SCHEDULED]


def _local_writes(events: list) -> list[str | None]:
    return [local_activity_type(e) for e in events if local_activity_type(e)]


async def test_a_held_candle_is_one_activity_and_ten_history_events(client, database_url, db):
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
        await keep_histories(handle)
        await handle.terminate("test over")
    kinds = [EventType.Name(e.event_type) for e in added]
    # signal, workflow task (3), manage-position with its row (3), workflow task (3)
    assert len(added) == 10 and MARKER not in [e.event_type for e in added], kinds
    assert _scheduled(added) == [names.MANAGE_AND_RECORD_POSITION_ACTIVITY]
    patches = [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in events
        if e.event_type == MARKER and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert POSITION_HOLD_RECORDED_BY_CALL_PATCH in patches, patches
    rows = await position_rows(db, row.signal_id)
    assert [d["action"] for d in rows["decisions"]] == ["hold", "hold"]


async def test_an_action_is_written_after_its_order_and_a_slow_hold_by_the_workflow(client, database_url, db):
    row = await entered_signal(db)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(row.signal_id, ManageAnswer.adjust_sl(97), ManageAnswer.hold())
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        before = len(await settled_events(handle))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        await eventually(lambda: _processed(handle, 1))
        moved = (await settled_events(handle))[before:]
        # The hold of candle 2 finds its row's key held past the activity's write bound.
        k = candle(row, 2, 100, 101, 99, 100)
        blocker = await asyncpg.connect(database_url)
        try:
            tx = await hold_decision_key(blocker, row, k)
            answered = await completed_activities(handle)
            await handle.signal(PositionManagerWorkflow.candle_closed, k)
            await eventually(lambda: left_to_the_workflow(handle, blocker, answered), timeout=30)
            await tx.rollback()
        finally:
            await blocker.close()
        await eventually(lambda: _processed(handle, 2))
        held = (await settled_events(handle))[before + len(moved) :]
        await keep_histories(handle)
        await handle.terminate("test over")
    assert _scheduled(moved) == [
        names.MANAGE_AND_RECORD_POSITION_ACTIVITY,
        names.MODIFY_POSITION_ACTIVITY,
    ] and _local_writes(moved) == [names.RECORD_POSITION_DECISION_ACTIVITY]
    assert _scheduled(held) == [names.MANAGE_AND_RECORD_POSITION_ACTIVITY]
    assert _local_writes(held) == [names.RECORD_POSITION_DECISION_ACTIVITY]
    assert len(m.proxy.requests_for(row.signal_id)) == 2  # each candle asked once
    rows = await position_rows(db, row.signal_id)
    assert [d["action"] for d in rows["decisions"]] == ["adjust_sl", "hold"]


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
