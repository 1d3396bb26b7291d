"""Live positions on the local spot exchange, through the position workflow, a worker, ccxt and
PostgreSQL: the orders the exchange lists agree with the `orders` and `positions` rows."""

from __future__ import annotations

from decimal import Decimal as D

from tests.live_support import exchange_view, live_exchange, make_live
from tests.monitor_harness import monitor_stack
from tests.position_support import candle, entered_signal, position_rows, result_of, start_position, view
from tests.support import async_update, eventually, signal_status
from workflows.position.inputs import StopLossRequest
from workflows.position.workflow import PositionManagerWorkflow


async def _open(handle):
    state = await view(handle)
    assert state.status == "open", state
    return state


async def test_live_position_life_stop_moved_then_filled_on_the_exchange(client, database_url, db):
    row = await entered_signal(db, stop_loss=95.0, take_profits=[110.0])
    async with live_exchange() as account:
        await make_live(db, row, account)
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
    assert [(side, kind) for _, side, kind, _, _ in listed] == [
        ("BUY", "MARKET/FILLED"),
        ("SELL", "STOP_LOSS_LIMIT/CANCELED"),
        ("SELL", "STOP_LOSS_LIMIT/FILLED"),
    ]
    rows = await position_rows(db, row.signal_id)
    by_id = {o["id"]: o for o in rows["orders"]}
    assert [cid for cid, *_ in listed] == [o["id"] for o in rows["orders"]]
    assert [(o["status"], o["filled"]) for o in rows["orders"]] == [
        ("closed", D(10)),
        ("canceled", D(0)),
        ("closed", D("9.99")),
    ]
    (position,) = rows["positions"]
    assert position["mode"] == "live" and position["status"] == "closed" and position["contracts"] == 0
    assert position["exit_price"] == D(97) and position["exchange_account_id"] is not None
    stop_fill = by_id[listed[2][0]]
    assert stop_fill["metadata"]["closed_position"] is True
    # P&L from the real fills: (97 - 100) x 9.99 - 0.01 BTC x 100 - 0.1 % of 969.03 USDT.
    assert position["realized_pnl"] == D("-29.97") - D("1") - D("0.96903") == result.realized_pnl
    assert await signal_status(db, row.signal_id) == "closed"
    for o in rows["orders"]:
        assert "api" not in str(o["metadata"]).lower()
