"""Garbage levels never become a position (issue 26, case 7): an `enter_trade` whose levels make
no trade in the stated direction is a bad answer (never an inferred short, never a position with
no stop), and a reduce that would leave less than the symbol's minimum closes the rest with it."""

from __future__ import annotations

import uuid
from functools import partial

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from fakes.llm_proxy import Answer, ManageAnswer
from tests.helpers.fault_checks import assert_three_checks
from tests.helpers.monitor import analysed, monitor_stack
from tests.helpers.positions import candle, entered_signal, position_rows, result_of, start_position, view
from tests.helpers.support import analyses, async_update, eventually, insert_signal, signal_status
from workflows.position.workflow import PositionManagerWorkflow


async def test_levels_that_make_no_trade_never_open_a_position(client, database_url, db):
    garbage = {
        "stop above the entry, no side": Answer.enter(97, entry=100.0, stop_loss=105.0, take_profit=[110.0]),
        "NaN stop, entry 1e309": Answer.enter(
            97, data_overrides={"keyLevels": {"entry": 1e309, "stopLoss": "NaN", "takeProfit": [110.0]}}
        ),
    }
    rows = {name: await insert_signal(db, interval="1m", max_reanalyses=10) for name in garbage}
    async with monitor_stack(client, database_url) as m:
        handles = {}
        for name, row in rows.items():
            m.proxy.script(row.signal_id, garbage[name], Answer.wait(55))
            handles[name] = await m.start(row.signal_id)
        for handle in handles.values():
            state = await eventually(partial(analysed, handle, 1), timeout=45)
            assert state.counts.failed_analyses == 0
        await assert_three_checks(
            client,
            db,
            "hostile levels: stop above entry (no side), NaN stop with entry 1e309",
            {r.signal_id: [] for r in rows.values()},
        )
    for name, row in rows.items():
        assert await signal_status(db, row.signal_id) == "monitoring", name
        assert [a["decision"] for a in await analyses(db, row.signal_id)] == ["wait"], name
        intents = await db.fetchval("SELECT count(*) FROM order_intents WHERE signal_id = $1", uuid.UUID(row.signal_id))
        assert intents == 0, name
        assert len(m.proxy.requests_for(row.signal_id)) == 2, name  # the bad answer, then its retry
    history = (await handles["NaN stop, entry 1e309"].fetch_history()).to_json()
    assert "enter_trade levels are no trade: entry" in history


async def _managed_or_ended(handle: WorkflowHandle, decisions: int) -> None:
    if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
        return
    state = await view(handle)
    assert state.decisions >= decisions and state.queued == 0, state


async def test_a_reduce_leaving_less_than_the_minimum_closes_the_rest(client, database_url, db):
    row = await entered_signal(db, stop_loss=90.0, take_profits=[150.0])
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(row.signal_id, ManageAnswer.reduce(0.99999999999), ManageAnswer.close())
        handle = await start_position(client, row, m.task_queue)
        await eventually(lambda: _managed_or_ended(handle, 0), timeout=30)
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        await eventually(lambda: _managed_or_ended(handle, 1), timeout=30)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            # (the code before the patch: a dust remainder managed, one more paid call per candle)
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 101, 99, 100))
        result = await result_of(handle)
    assert result.status == "closed" and result.reason.startswith("close_action"), result
    rows = await position_rows(db, row.signal_id)
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]
    (decision,) = rows["decisions"]
    assert decision["action"] == "close" and "below the minimum" in decision["reasoning"], decision
    assert len(m.proxy.requests_for(row.signal_id)) == 1
    assert await signal_status(db, row.signal_id) == "closed"


async def test_an_intent_with_150000_targets_still_opens_a_managed_position(client, database_url, db):
    """An order intent written before answers were bounded (8-place decimals: over Temporal's payload
    limit whole) opens a position with its first 20 targets; queries and the operator's close work."""
    targets = [float(f"{150 + i * 0.00000001:.8f}") for i in range(150_000)]
    row = await entered_signal(db, stop_loss=90.0, take_profits=targets)
    async with monitor_stack(client, database_url) as m:
        handle = await start_position(client, row, m.task_queue)

        async def opened():
            state = await view(handle)
            assert state.status == "open", state
            return state

        state = await eventually(opened, timeout=60)
        assert len(state.take_profits) == 20 and state.stop_loss is not None
        await handle.execute_update(async_update(PositionManagerWorkflow.close), "desk")
        result = await result_of(handle)
    assert result.status == "closed"
    rows = await position_rows(db, row.signal_id)
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]
