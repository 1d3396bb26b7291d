"""Position management through real parts: Temporal dev server, PostgreSQL, fake llm-proxy over HTTP."""

from __future__ import annotations

import uuid
from decimal import Decimal as D
from functools import partial

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from fakes.llm_proxy import Answer, Fault, ManageAnswer
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import (
    candle,
    entered_signal,
    entered_signal_of,
    position_rows,
    result_of,
    start_position,
    view,
)
from tests.helpers.support import async_update, eventually, insert_signal, signal_status
from workflows.common import search_attributes as sa
from workflows.monitor.workflow import SignalMonitorWorkflow
from workflows.position.inputs import CloseRequest, StopLossRequest, TakeProfitRequest
from workflows.position.workflow import PositionManagerWorkflow


async def _processed(handle, n: int):
    state = await view(handle)
    assert state.decisions >= n and state.queued == 0, state
    return state


async def test_lifecycle_enter_paper_fill_managed_closes_then_stop_loss(client, database_url, db):
    row = await insert_signal(db, symbol="SOLUSDT", interval="1m", price=100.0)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(55), Answer.enter(85, entry=100.0, stop_loss=95.0, take_profit=[110]))
        m.proxy.script_position(row.signal_id, ManageAnswer.hold(), ManageAnswer.adjust_sl(97))
        monitor = await m.start(row.signal_id)
        await eventually(lambda: _analysed(monitor, 1))
        await monitor.signal(SignalMonitorWorkflow.candle_closed, candle(row, 1, 99, 101, 98, 100))
        assert (await result_of(monitor)).status == "in_position"
        handle = client.get_workflow_handle_for(PositionManagerWorkflow.run, f"position-{row.signal_id}")
        opened = await eventually(lambda: _status(handle, "open"))
        assert opened.entry_price == D("100.05") and opened.quantity == D("9.99500249")
        # the deciding close: stale
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 99, 101, 98, 100))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 102, 99, 101))
        await eventually(lambda: _processed(handle, 1))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 3, 101, 104, 100, 103))
        state = await eventually(lambda: _processed(handle, 2))
        assert state.stop_loss == D(97) and state.counts.stale == 1
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 4, 103, 103, 96, 96.5))
        result = await result_of(handle)
        desc = await handle.describe()

    assert result.status == "closed" and result.reason.startswith("stop_loss")
    assert result.exit_price == D(97)
    fee_in, fee_out = D("100.05") * D("9.99500249") / 1000, D(97) * D("9.99500249") / 1000
    expected = (D(97) - D("100.05")) * D("9.99500249") - fee_in.quantize(D("1e-8")) - fee_out.quantize(D("1e-8"))
    assert result.realized_pnl == expected.quantize(D("1e-8"))
    rows = await position_rows(db, row.signal_id)
    assert [(o["side"], o["type"], o["metadata"]["kind"]) for o in rows["orders"]] == [
        ("buy", "market", "entry"),
        ("sell", "stop", "stop_loss"),
    ]
    (position,) = rows["positions"]
    assert position["status"] == "closed" and position["close_reason"] == "stop_loss"
    assert position["exit_price"] == D(97) and position["realized_pnl"] == result.realized_pnl
    assert position["contracts"] == 0 and position["mode"] == "paper" and position["stop_loss"] == D(97)
    assert [d["action"] for d in rows["decisions"]] == ["hold", "adjust_sl", "close"]
    assert rows["decisions"][2]["confidence"] is None and "stop_loss reached" in rows["decisions"][2]["reasoning"]
    assert await signal_status(db, row.signal_id) == "closed"
    assert await db.fetchval("SELECT closed_at FROM signals WHERE id = $1", uuid.UUID(row.signal_id)) is not None
    sent = [r for r in m.proxy.requests_for(row.signal_id) if r.body["operation"] == "manage-position"]
    assert len(sent) == 2 and sent[1].params["previousDecisions"][0]["action"] == "hold"
    assert sent[0].params["entryPrice"] == 100.05 and sent[0].params["currentSL"] == 95.0
    attrs = desc.typed_search_attributes
    assert attrs.get(sa.POSITION_STATUS) == "closed" and attrs.get(sa.SIGNAL_SYMBOL) == "SOLUSDT"
    print_rows(rows)


def print_rows(rows) -> None:
    for table, records in rows.items():
        for r in records:
            print(table, dict(r))


async def _analysed(handle, n):
    state = await handle.query(SignalMonitorWorkflow.state)
    assert state.analyses == n and not state.analysing


async def _status(handle, status):
    state = await view(handle)
    assert state.status == status, state
    return state


async def test_partial_take_profit_then_full(client, database_url, db):
    row = await entered_signal(db, take_profits=[105, 110], partial_take_profit_levels=[25, 50, 75])
    async with monitor_stack(client, database_url) as m:
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _status(handle, "open"))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 106, 99, 104))
        state = await eventually(lambda: _processed(handle, 1))
        assert state.quantity == D("9.99500249") - D("2.49875062") and state.targets_hit == 1
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 104, 111, 103, 109))
        result = await result_of(handle)
    assert result.status == "closed" and result.reason.startswith("take_profit") and result.exit_price == D(110)
    rows = await position_rows(db, row.signal_id)
    kinds = [(o["metadata"]["kind"], o["type"], o["average_price"], o["filled"]) for o in rows["orders"]]
    assert kinds == [
        ("entry", "market", D("100.05"), D("9.99500249")),
        ("take_profit", "limit", D(105), D("2.49875062")),
        ("take_profit", "limit", D(110), D("7.49625187")),
    ]
    assert rows["positions"][0]["realized_pnl"] == result.realized_pnl > 0
    assert [d["action"] for d in rows["decisions"]] == ["hold", "close"]


async def test_trailing_stop(client, database_url, db):
    row = await entered_signal(db, stop_loss=90, take_profits=[200], trailing_stop_distance=2, use_trailing_stop=True)
    async with monitor_stack(client, database_url) as m:
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _status(handle, "open"))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 110, 100, 109))
        await eventually(lambda: _processed(handle, 1))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 109, 109.5, 107, 108))
        result = await result_of(handle)
    assert result.reason.startswith("trailing_stop") and result.exit_price == D("107.8")
    assert result.realized_pnl > 0


async def test_close_action_and_an_impossible_action_held(client, database_url, db):
    row = await entered_signal(db)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(
            row.signal_id, ManageAnswer.adjust_sl(150), ManageAnswer.reduce(1.0), ManageAnswer.reduce(0.5),
            ManageAnswer.close(),
        )  # fmt: skip
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _status(handle, "open"))
        for n in (1, 2, 3):
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, n, 100, 102, 99, 101))
            await eventually(partial(_processed, handle, n))
        state = await view(handle)
        assert state.counts.held_invalid == 2 and state.stop_loss == D(95)
        assert state.quantity == D("9.99500249") - D("4.99750124")
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 4, 101, 103, 100, 102))
        result = await result_of(handle)
    assert result.reason.startswith("close_action") and result.exit_price == D("101.949")
    rows = await position_rows(db, row.signal_id)
    decisions = rows["decisions"]
    assert [d["action"] for d in decisions] == ["hold", "hold", "reduce", "close"]
    assert decisions[0]["action_details"]["requested"] == "adjust_sl"
    assert "at or above the market price 101" in decisions[0]["reasoning"]
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "reduce", "close"]
    assert rows["positions"][0]["stop_loss"] == D(95)


async def test_operator_close_and_updates(client, database_url, db):
    row = await entered_signal(db)
    async with monitor_stack(client, database_url) as m:
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _status(handle, "open"))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 102, 99, 101))
        await eventually(lambda: _processed(handle, 1))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                async_update(PositionManagerWorkflow.set_stop_loss), StopLossRequest(stop_loss=D(102))
            )
        assert "below the last price 101" in str(refused.value.cause)
        assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.non_retryable
        state = await handle.execute_update(
            async_update(PositionManagerWorkflow.set_stop_loss), StopLossRequest(stop_loss=D(98))
        )
        assert state.stop_loss == D(98)
        state = await handle.execute_update(
            async_update(PositionManagerWorkflow.set_take_profit), TakeProfitRequest(take_profit=[D(120), D(115)])
        )
        assert state.take_profits == [D(115), D(120)]
        close = CloseRequest(reason="exchange halted")
        result = await handle.execute_update(async_update(PositionManagerWorkflow.close), close)
        assert await result_of(handle) == result
    assert result.status == "closed" and "exchange halted" in result.reason
    assert result.exit_price == D("100.9495")  # the last close (101) minus 0.05 % slippage
    rows = await position_rows(db, row.signal_id)
    position = rows["positions"][0]
    assert position["close_reason"] == "operator: exchange halted" and position["stop_loss"] == D(98)
    assert position["take_profit"] == ["115", "120"]
    assert await signal_status(db, row.signal_id) == "closed"


async def test_consecutive_losses_pause_the_trader(client, database_url, db):
    first = await entered_signal(db, max_consecutive_losses=2)
    second = await entered_signal_of(db, first)
    async with monitor_stack(client, database_url) as m:
        for n, row in enumerate((first, second)):
            handle = await start_position(client, row, m.task_queue, entry_price=D(100))
            await eventually(partial(_status, handle, "open"))
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 99, 99, 90, 91))
            result = await result_of(handle)
            assert result.realized_pnl < 0 and result.trader_paused == (n == 1)
    paused = await db.fetchrow(
        "SELECT paused, paused_reason, consecutive_losses FROM traders WHERE id = $1", uuid.UUID(first.trader_id)
    )
    assert paused["paused"] and paused["consecutive_losses"] == 2
    assert "2 consecutive positions closed at a loss" in paused["paused_reason"]


async def test_bad_input_or_id_mismatch_fails_at_once(client, database_url, db):
    row = await entered_signal(db)
    async with monitor_stack(client, database_url) as m:
        wrong = await client.start_workflow(
            "PositionManagerWorkflow", {"signal_id": row.signal_id}, id=f"position-{uuid.uuid4()}",
            task_queue=m.task_queue,
        )  # fmt: skip
        with pytest.raises(WorkflowFailureError) as info:
            await result_of(wrong)
        assert "does not match its signal" in str(info.value.cause)
        bad = await client.start_workflow(
            "PositionManagerWorkflow", {"signal": 1}, id=f"position-{uuid.uuid4()}", task_queue=m.task_queue
        )
        with pytest.raises(WorkflowFailureError) as info:
            await result_of(bad)
        assert "PositionManagerWorkflow input must be" in str(info.value.cause)
        not_entered = await insert_signal(db)
        handle = await start_position(client, not_entered, m.task_queue)
        result = await result_of(handle)
        orphan = await entered_signal(db)
        await db.execute("DELETE FROM traders WHERE id = $1", uuid.UUID(orphan.trader_id))
        orphaned = await result_of(await start_position(client, orphan, m.task_queue))
    assert result.status == "not_opened" and "not in_position" in result.reason
    assert await signal_status(db, not_entered.signal_id) == "new"
    assert orphaned.status == "not_opened" and "not found" in orphaned.reason
    assert await signal_status(db, orphan.signal_id) == "failed"
    assert (await position_rows(db, orphan.signal_id))["orders"] == []


async def test_management_interval_and_a_failing_manage_position_is_held(client, database_url, db):
    row = await entered_signal(db, take_profits=[150], management_interval="5m")
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(row.signal_id, Fault.status(401), Fault.timeout(10), ManageAnswer.close())
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _status(handle, "open"))
        # 1m: not the management interval
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        five = {**candle(row, 5, 100, 101, 99, 100), "i": "5m"}
        five["T"] = five["t"] + 300_000 - 1
        await handle.signal(PositionManagerWorkflow.candle_closed, five)
        state = await eventually(lambda: _processed(handle, 1))
        assert state.counts.foreign == 1 and state.counts.llm_failures == 1
        assert "LlmProxyAuthError" in state.last_decisions[-1].reasoning
        nxt = {**five, "t": five["t"] + 300_000, "T": five["T"] + 300_000}
        await handle.signal(PositionManagerWorkflow.candle_closed, nxt)
        result = await result_of(handle)
    assert result.reason.startswith("close_action")
    rows = await position_rows(db, row.signal_id)
    assert [d["action"] for d in rows["decisions"]] == ["hold", "close"]
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(sa.SIGNAL_INTERVAL) == "5m"
