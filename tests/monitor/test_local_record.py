"""Where an analysis' row is written. Since the patch `analysis-activity-records-its-row` the
analysis activity (`analyze_and_record_signal`) writes it after the answer, in the same attempt: an
analysed candle is 11 history events and no local activity. A write that is slow or fails there is
given up, and the workflow writes the row with the local `record_analysis` (patch
`record-analysis-local-activity`), the answer already in its history: llm-proxy is not asked again.
Around both: a cancel that lands while the write waits on the database cancels the monitor and
marks the signal cancelled, and every analysis is one row."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from bench.history import local_activity_type
from fakes.llm_proxy import Answer, always
from tests.helpers.blocking import cancel_while_the_write_waits, in_open_transaction
from tests.helpers.monitor import Monitor, analysed, monitor_stack
from tests.helpers.support import (
    SignalRow,
    analyses,
    completed_activities,
    eventually,
    insert_signal,
    kline,
    left_to_the_workflow,
    settled_events,
    signal_status,
)
from workflows.common import names
from workflows.monitor.workflow import SignalMonitorWorkflow


@contextlib.asynccontextmanager
async def _waiting_monitor(client, database_url: str, row: SignalRow) -> AsyncIterator[tuple[Monitor, WorkflowHandle]]:
    """A 1m monitor past its first analysis, every answer `wait`, for the block."""
    async with monitor_stack(client, database_url) as m:
        m.proxy.default = always(Answer.wait(55))
        handle = await m.start(row.signal_id)
        await eventually(lambda: analysed(handle, 1))
        yield m, handle


async def test_cancel_while_the_local_record_waits_on_the_database(client, database_url, db):
    row = await insert_signal(db, interval="1m")
    async with _waiting_monitor(client, database_url, row) as (_, handle):
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


def _kinds(events: list) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


async def test_an_analysed_candle_is_one_activity_and_eleven_history_events(client, database_url, db):
    row = await insert_signal(db, interval="1m")
    async with _waiting_monitor(client, database_url, row) as (_, handle):
        before = len(await settled_events(handle))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: analysed(handle, 2))
        added = (await settled_events(handle))[before:]
        await handle.terminate("test over")
    # signal, workflow task (3), the analysis with its row (3), workflow task (3), Reanalyses upsert
    kinds = _kinds(added)
    assert "MARKER_RECORDED" not in kinds and len(added) == 11, kinds
    assert [r["analysis_number"] for r in await analyses(db, row.signal_id)] == [0, 1]


async def test_a_slow_write_is_left_to_the_workflow_and_llm_proxy_is_not_asked_again(client, database_url, db):
    row = await insert_signal(db, interval="1m")
    async with _waiting_monitor(client, database_url, row) as (m, handle):
        before = len(await settled_events(handle))
        blocker = await asyncpg.connect(database_url)
        try:
            # record_analysis takes the signal's row FOR UPDATE: held past the activity's RECORD_WITHIN.
            tx = await in_open_transaction(
                blocker, "SELECT 1 FROM signals WHERE id = $1 FOR UPDATE", uuid.UUID(row.signal_id)
            )
            answered = await completed_activities(handle)
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
            await eventually(lambda: left_to_the_workflow(handle, blocker, answered), timeout=30)
            await tx.rollback()
        finally:
            await blocker.close()
        await eventually(lambda: analysed(handle, 2))
        added = (await settled_events(handle))[before:]
        await handle.terminate("test over")
    assert len(m.proxy.requests_for(row.signal_id)) == 2  # analyses #0 and #1, each asked once
    assert [r["analysis_number"] for r in await analyses(db, row.signal_id)] == [0, 1]
    # The analysis activity completed without its row; the local record_analysis wrote it.
    assert [local_activity_type(e) for e in added if local_activity_type(e)] == [names.RECORD_ANALYSIS]
