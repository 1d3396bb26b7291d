"""Position manager: the duration timer (time-skipping), continue-as-new, cancel, and orders placed
exactly once when an execution activity is retried."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from functools import partial

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment

from activities.database import create_pool
from activities.paper_execution import PaperExecution
from fakes.llm_proxy import ManageAnswer
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import candle, entered_signal, position_rows, result_of, start_position, view
from tests.helpers.support import eventually, signal_status
from workflows.position.models import OpenPositionInput, OrderInput
from workflows.position.workflow import PositionManagerWorkflow


async def test_max_position_duration_closes_at_the_last_price(skipping_env, database_url, db):
    row = await entered_signal(db, interval="4h", max_position_duration=timedelta(days=2))
    async with monitor_stack(skipping_env.client, database_url) as m:
        handle = await start_position(skipping_env.client, row, m.task_queue, entry_price=D(100))
        result = await result_of(handle)
        now = await skipping_env.get_current_time()
    assert result.status == "closed" and result.reason.startswith("max_position_duration"), result
    assert now - row.timestamp >= timedelta(days=2)
    # No candle came: closed at the entry's own price less slippage, so fees and slippage are the loss.
    assert result.exit_price == D("99.99997500") and result.realized_pnl < 0
    rows = await position_rows(db, row.signal_id)
    assert rows["positions"][0]["close_reason"] == "max_position_duration"
    assert await signal_status(db, row.signal_id) == "closed"


async def test_continue_as_new_keeps_the_position_and_its_deduplication(client, database_url, db):
    row = await entered_signal(db, take_profits=[200])
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(row.signal_id, *[ManageAnswer.hold()] * 12, ManageAnswer.close())
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _open(handle))
        for n in range(1, 13):
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, n, 100, 101, 99, 100 + n / 10))
            # duplicate
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, n, 100, 101, 99, 100 + n / 10))
            await eventually(partial(_processed, handle, n))
        state = await view(handle)
        assert state.runs > 1, "the dev server suggests continue-as-new after 60 events"
        # seen before the continue-as-new: still known
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 3, 100, 101, 99, 100))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 13, 100, 101, 99, 101))
        result = await result_of(handle)
    assert result.reason.startswith("close_action") and result.counts.processed == 13
    assert result.counts.duplicate == 13 and result.counts.received == 26
    rows = await position_rows(db, row.signal_id)
    assert len(rows["decisions"]) == 13 and [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]


async def test_cancel_leaves_the_position_as_it_is(client, database_url, db):
    row = await entered_signal(db)
    async with monitor_stack(client, database_url) as m:
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _open(handle))
        await handle.cancel()
        await eventually(lambda: _described(handle, WorkflowExecutionStatus.CANCELED))
    rows = await position_rows(db, row.signal_id)
    assert rows["positions"][0]["status"] == "open" and len(rows["orders"]) == 1
    assert await signal_status(db, row.signal_id) == "in_position"


async def test_a_retried_execution_activity_places_each_order_once(database_url, db):
    """What a worker killed between the order and the workflow's record amounts to: the activity
    runs again with the same key, and finds its order instead of placing a second."""
    row = await entered_signal(db)
    pool = await create_pool(database_url, 2)
    try:
        paper, env = PaperExecution(pool), ActivityEnvironment()
        opening = OpenPositionInput(
            key=f"{row.signal_id}:1:open", signal_id=row.signal_id, trader_id=row.trader_id, user_id=row.user_id,
            symbol=row.symbol, side="long", reference_price=D(100), stake=D(1000), stop_loss=D(95),
            take_profits=[D(110)],
        )  # fmt: skip
        first, again = await env.run(paper.open_position, opening), await env.run(paper.open_position, opening)
        assert (
            first.fill.inserted
            and not again.fill.inserted
            and first.fill == again.fill.model_copy(update={"inserted": True})
        )
        reduce = OrderInput(
            key=f"{row.signal_id}:2:reduce", signal_id=row.signal_id, position_id=first.position_id,
            user_id=row.user_id, symbol=row.symbol, side="long", kind="reduce", quantity=D(2),
            reference_price=D(105), market=True, close=False,
        )  # fmt: skip
        one, two = await env.run(paper.reduce_position, reduce), await env.run(paper.reduce_position, reduce)
        assert one.inserted and not two.inserted and one.price == two.price == D("104.9475")
    finally:
        await pool.close()
    rows = await position_rows(db, row.signal_id)
    assert len(rows["orders"]) == 2
    assert rows["positions"][0]["contracts"] == D("9.99500249") - 2


async def _open(handle):
    state = await view(handle)
    assert state.status == "open", state


async def _processed(handle, n):
    state = await view(handle)
    assert state.decisions >= n and state.queued == 0, state


async def _described(handle, status):
    assert (await handle.describe()).status == status
