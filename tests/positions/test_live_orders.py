"""Live positions on the local spot exchange, through the position workflow, a worker, ccxt and
PostgreSQL: the orders the exchange lists agree with the `orders` and `positions` rows."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal as D

from fakes.llm_proxy import FakeLlmProxy, ManageAnswer
from tests.helpers.live import API_KEY, LiveAccount, exchange_view, live_exchange, make_live
from tests.helpers.monitor import TEST_KEY, make_settings, monitor_stack
from tests.helpers.positions import candle, entered_signal, position_rows, result_of, start_position, view
from tests.helpers.support import SignalRow, async_update, eventually, signal_status
from workers.worker import running_worker
from workflows.position.inputs import StopLossRequest
from workflows.position.workflow import PositionManagerWorkflow


@contextlib.asynccontextmanager
async def _live_signal(db, take_profit: float) -> AsyncIterator[tuple[SignalRow, LiveAccount]]:
    """An entered long (stop 95, one target) whose trader trades live on a fresh exchange account."""
    row = await entered_signal(db, stop_loss=95.0, take_profits=[take_profit])
    async with live_exchange() as account:
        await make_live(db, row, account)
        yield row, account


async def _open(handle):
    state = await view(handle)
    assert state.status == "open", state
    return state


async def _opened_then_workers_gone(client, database_url, row, account):
    """The live position opened by a worker stack that then stops: its handle and task queue."""
    async with monitor_stack(client, database_url, **account.settings()) as m:
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(lambda: _open(handle))
    return handle, m.task_queue


async def test_live_position_life_stop_moved_then_filled_on_the_exchange(client, database_url, db):
    async with _live_signal(db, take_profit=110.0) as (row, account):
        async with monitor_stack(client, database_url, **account.settings()) as m:
            handle = await start_position(client, row, m.task_queue, entry_price=D(100))
            opened = await eventually(lambda: _open(handle))
            # 1000 USDT stake at 100: 10 BTC bought, the 0.1 % fee taken in BTC.
            assert (opened.entry_price, opened.quantity) == (D(100), D("9.99"))
            await handle.execute_update(
                async_update(PositionManagerWorkflow.set_stop_loss), StopLossRequest(stop_loss=D(97))
            )
            # The market falls through 97 on the exchange; then the candle reaches the workflow.
            account.exchange.trade_at("BTCUSDT", "98")
            account.exchange.trade_at("BTCUSDT", "96.6")
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 100, 96.6, 96.8))
            result = await result_of(handle)
        listed = exchange_view(account)
    assert result.status == "closed" and result.exit_price == D(97)
    assert result.reason.startswith("stop_loss") and "filled on the exchange" in result.reason
    # The stop rests with the one target as an OCO; moving the stop cancels the list and places
    # a new one (new client ids); the stop leg's fill expired its target leg.
    assert [(side, kind) for _, side, kind, _, _ in listed] == [
        ("BUY", "MARKET/FILLED"),
        ("SELL", "LIMIT_MAKER/CANCELED"),
        ("SELL", "STOP_LOSS_LIMIT/CANCELED"),
        ("SELL", "LIMIT_MAKER/EXPIRED"),
        ("SELL", "STOP_LOSS_LIMIT/FILLED"),
    ]
    rows = await position_rows(db, row.signal_id)
    by_id = {o["id"]: o for o in rows["orders"]}
    assert sorted(cid for cid, *_ in listed) == sorted(by_id)
    assert [(by_id[cid]["status"], by_id[cid]["filled"]) for cid, *_ in listed] == [
        ("closed", D(10)),
        ("canceled", D(0)),
        ("canceled", D(0)),
        ("expired", D(0)),
        ("closed", D("9.99")),
    ]
    (position,) = rows["positions"]
    assert position["mode"] == "live" and position["status"] == "closed" and position["contracts"] == 0
    assert position["exit_price"] == D(97) and position["exchange_account_id"] is not None
    stop_fill = by_id[listed[4][0]]
    assert stop_fill["metadata"]["closed_position"] is True
    # P&L from the real fills: (97 - 100) x 9.99 - 0.01 BTC x 100 - 0.1 % of 969.03 USDT.
    assert position["realized_pnl"] == D("-29.97") - D("1") - D("0.96903") == result.realized_pnl
    assert await signal_status(db, row.signal_id) == "closed"
    for o in rows["orders"]:
        assert "api" not in str(o["metadata"]).lower()
    # One live position's life (pytest -s): the exchange's list beside the rows.
    for cid, side, kind, qty, executed in listed:
        print("exchange", cid, side, kind, qty, executed)
    for o in rows["orders"]:
        meta = o["metadata"]
        print("orders", o["id"], o["side"], o["type"], o["status"], o["quantity"], o["filled"], o["average_price"],
              o["fee_cost"], meta["kind"], meta.get("exchange_order_id"))  # fmt: skip
    print("positions", {k: position[k] for k in ("id", "mode", "status", "contracts", "initial_contracts",
                                                  "entry_price", "exit_price", "realized_pnl", "fees_paid",
                                                  "close_reason", "stop_loss")})  # fmt: skip


async def test_stop_filled_while_every_worker_is_down_closes_at_its_real_fill(client, database_url, db):
    async with _live_signal(db, take_profit=120.0) as (row, account):
        handle, queue = await _opened_then_workers_gone(client, database_url, row, account)
        # No worker runs: the market falls through the stop, which fills on the exchange.
        account.exchange.trade_at("BTCUSDT", "96")
        account.exchange.trade_at("BTCUSDT", "94.2")
        (stop,) = [o for o in account.orders() if o.type == "STOP_LOSS_LIMIT"]
        assert stop.status == "FILLED" and stop.trades[0].price == D(95)
        async with restarted_worker(client, database_url, queue, account):
            # The next close (its low at 94.2 as well) reaches the restarted worker.
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 100, 94.2, 94.5))
            result = await result_of(handle)
    assert result.exit_price == D(95) and "filled on the exchange" in result.reason
    rows = await position_rows(db, row.signal_id)
    assert sorted((o["side"], o["type"], o["status"]) for o in rows["orders"]) == [
        ("buy", "market", "closed"),
        ("sell", "limit", "expired"),  # the OCO's target leg, expired by the stop leg's fill
        ("sell", "stop_limit", "closed"),
    ]
    (position,) = rows["positions"]
    assert position["status"] == "closed" and position["exit_price"] == D(95) and position["contracts"] == 0
    # No market sell: the exchange's stop was the exit.
    assert [o.type for o in account.orders()] == ["MARKET", "LIMIT_MAKER", "STOP_LOSS_LIMIT"]
    assert [d["action"] for d in rows["decisions"]] == ["close"]


async def test_target_filled_while_every_worker_is_down_closes_at_its_real_fill(client, database_url, db):
    async with _live_signal(db, take_profit=110.0) as (row, account):
        handle, queue = await _opened_then_workers_gone(client, database_url, row, account)
        # No worker runs: the market rises through the target, whose OCO leg fills on the exchange.
        account.exchange.trade_at("BTCUSDT", "106")
        account.exchange.trade_at("BTCUSDT", "110.7")
        listed_down = exchange_view(account)
        async with restarted_worker(client, database_url, queue, account):
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 110.8, 100, 110.5))
            result = await result_of(handle)
        listed = exchange_view(account)
    assert [(side, kind, executed) for _, side, kind, _, executed in listed_down] == [
        ("BUY", "MARKET/FILLED", D(10)),
        ("SELL", "LIMIT_MAKER/FILLED", D("9.99")),
        ("SELL", "STOP_LOSS_LIMIT/EXPIRED", D(0)),
    ]
    assert listed == listed_down  # the restart placed nothing: the target's fill was the exit
    assert result.status == "closed" and result.exit_price == D(110)
    assert result.reason == "take_profit: take_profit filled on the exchange at 110"
    rows = await position_rows(db, row.signal_id)
    by_id = {o["id"]: o for o in rows["orders"]}
    assert sorted(by_id) == sorted(cid for cid, *_ in listed)
    assert [(by_id[cid]["type"], by_id[cid]["status"], by_id[cid]["filled"]) for cid, *_ in listed] == [
        ("market", "closed", D(10)),
        ("limit", "closed", D("9.99")),
        ("stop_limit", "expired", D(0)),
    ]
    (position,) = rows["positions"]
    assert position["status"] == "closed" and position["exit_price"] == D(110) and position["contracts"] == 0
    # (110 - 100) x 9.99 - 0.01 BTC x 100 (entry fee) - 0.1 % of 1098.9 USDT
    assert position["realized_pnl"] == D("99.9") - D(1) - D("1.0989") == result.realized_pnl
    assert [d["action"] for d in rows["decisions"]] == ["close"]
    assert await signal_status(db, row.signal_id) == "closed"
    for cid, side, kind, qty, executed in listed:
        print("exchange", cid, side, kind, qty, executed)
    for o in rows["orders"]:
        print("orders", o["id"], o["side"], o["type"], o["status"], o["quantity"], o["filled"], o["average_price"],
              o["fee_cost"], o["metadata"]["kind"])  # fmt: skip
    print("positions", {k: position[k] for k in ("id", "status", "contracts", "entry_price", "exit_price",
                                                  "realized_pnl", "fees_paid", "close_reason")})  # fmt: skip


async def test_a_stop_that_cannot_be_put_back_is_an_emergency_exit(client, database_url, db):
    async with _live_signal(db, take_profit=120.0) as (row, account):
        ex = account.exchange
        async with monitor_stack(client, database_url, **account.settings()) as m:
            handle = await start_position(client, row, m.task_queue, entry_price=D(100))
            await eventually(lambda: _open(handle))
            # The exchange cancels the OCO, then the market falls under the stop: at the next close
            # the stop cannot rest again ("would trigger immediately"): sold at market at once.
            (stop,) = [o for o in account.orders() if o.type == "STOP_LOSS_LIMIT"]
            ex.cancel_by_exchange(stop.client_order_id)
            ex.trade_at("BTCUSDT", "94")
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 100, 93.5, 94))
            result = await result_of(handle)
        listed = exchange_view(account)
    assert [(side, kind) for _, side, kind, _, _ in listed] == [
        ("BUY", "MARKET/FILLED"),
        ("SELL", "LIMIT_MAKER/CANCELED"),
        ("SELL", "STOP_LOSS_LIMIT/CANCELED"),
        ("SELL", "MARKET/FILLED"),  # the emergency exit, once
    ]
    assert result.status == "closed" and result.exit_price == D(94)
    rows = await position_rows(db, row.signal_id)
    (position,) = rows["positions"]
    assert position["close_reason"] == "emergency exit: the stop 95 would trigger immediately (sold at market)"
    # Every order the exchange lists has its row; the OCO put back was refused (2 `rejected` rows).
    assert {o["id"] for o in rows["orders"] if o["status"] != "rejected"} == {cid for cid, *_ in listed}
    assert len([o for o in rows["orders"] if o["status"] == "rejected"]) == 2
    assert [d["action"] for d in rows["decisions"]] == ["close"]


async def test_a_cancelled_stop_is_put_back_and_a_hand_sale_ends_the_position(client, database_url, db):
    async with _live_signal(db, take_profit=120.0) as (row, account):
        ex = account.exchange
        async with monitor_stack(client, database_url, **account.settings()) as m:
            m.proxy.script_position(row.signal_id, *([ManageAnswer.hold()] * 3))
            handle = await start_position(client, row, m.task_queue, entry_price=D(100))
            await eventually(lambda: _open(handle))
            (first,) = [o for o in account.orders() if o.type == "STOP_LOSS_LIMIT"]
            ex.cancel_by_exchange(first.client_order_id)
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
            await eventually(lambda: _decisions(handle, 1))
            stops = [(o.status, o.orig_qty) for o in account.orders() if o.type == "STOP_LOSS_LIMIT"]
            assert stops == [("CANCELED", D("9.99")), ("NEW", D("9.99"))]
            # The user sells by hand: cancels the stop and sells most of the coins.
            (back,) = [o for o in account.orders() if o.status == "NEW" and o.type == "STOP_LOSS_LIMIT"]
            ex.cancel_by_exchange(back.client_order_id)
            ex.book.place(ex.book.accounts[API_KEY], symbol="BTCUSDT", side="SELL", type="MARKET",
                          qty=D(9), price=None, stop_price=None, client_id="by-hand", time_in_force=None,
                          now_ms=ex.now_ms())  # fmt: skip
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 101, 99, 100))
            result = await result_of(handle)
    assert "balance lower than the position" in result.reason
    rows = await position_rows(db, row.signal_id)
    (position,) = rows["positions"]
    assert position["status"] == "closed" and "sold outside the monitor" in position["close_reason"]
    put_back = [o for o in rows["orders"] if o["type"] == "stop_limit"]
    assert [o["status"] for o in put_back] == ["canceled", "canceled"]  # as the exchange lists them
    assert "by-hand" not in {o["id"] for o in rows["orders"]}


@contextlib.asynccontextmanager
async def restarted_worker(client, database_url, queue: str, account) -> AsyncIterator[None]:
    """A worker on an existing position's task queue (its earlier worker is gone)."""
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        settings = make_settings(database_url, proxy.url, queue, **account.settings())
        async with running_worker(client, settings):
            yield


async def _decisions(handle, n):
    state = await view(handle)
    assert state.decisions >= n and state.queued == 0, state
    return state
