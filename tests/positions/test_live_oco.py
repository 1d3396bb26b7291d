"""The live position's protection as an OCO on the local spot exchange (stop and the one target
that closes the position), through ccxt and PostgreSQL: every leg's client id derived from the
revision's key, exactly one list per intended action, the exchange's fills as the exit, and the
`orders` rows agreeing with the exchange's list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import asyncpg
import pytest

from activities.live.backend import LiveExecution
from activities.live.client_ids import client_order_id, protective_key
from tests.helpers.live import API_KEY, LiveAccount, live_backend
from tests.helpers.support import SignalRow
from tests.positions.test_live_faults import agree, attempts, entry, exit_request
from workflows.position.models import ModifyInput, OpenPositionInput, ReconcileInput


@pytest.fixture
async def live(db, database_url) -> AsyncIterator[tuple[LiveAccount, LiveExecution]]:
    from activities.database import create_pool

    pool: asyncpg.Pool = await create_pool(database_url, 4)
    async with live_backend(pool) as live:
        yield live
    await pool.close()


async def opened_with_oco(db, account: LiveAccount, backend: LiveExecution) -> tuple[SignalRow, OpenPositionInput]:
    """An entry whose target (110) rests on the exchange with its stop as one OCO list, opened."""
    row, request = await entry(db, account)
    request = request.model_copy(update={"exchange_target": D(110)})
    await attempts(lambda: backend.open(request, account.account_id))
    return row, request


def legs(account, list_id: int) -> list[tuple[str, str, D]]:
    return [(o.type, o.status, o.price) for o in account.exchange.orders_of(API_KEY) if o.order_list_id == list_id]


def sells(account, type: str = "MARKET") -> list:
    return [o for o in account.exchange.orders_of(API_KEY) if o.side == "SELL" and o.type == type]


async def test_oco_rests_is_replaced_once_through_a_lost_answer_and_a_close_cancels_it(db, live) -> None:
    account, backend = live
    ex = account.exchange
    row, request = await opened_with_oco(db, account, backend)
    stop_cid = client_order_id(protective_key(request.key, "0"))
    (first,) = [o for o in ex.orders_of(API_KEY) if o.client_order_id == stop_cid]
    assert legs(account, first.order_list_id) == [
        ("LIMIT_MAKER", "NEW", D(110)),
        ("STOP_LOSS_LIMIT", "NEW", D("94.52")),
    ]
    position_id = f"live-{row.signal_id}"
    assert await db.fetchval("SELECT protective_order_id FROM positions WHERE id = $1", position_id) == stop_cid
    await agree(db, account, row)
    # Moving stop and target: the list is cancelled and a new one placed under new ids; its answer
    # is lost, and the retried activity adopts it (one new list on the exchange, not two).
    ex.faults.lose_answer.append(("/orderList/oco", "drop"))
    move = ModifyInput(key=f"{row.signal_id}:m1", position_id=position_id, stop_loss=D(96), take_profits=[D(112)],
                       exchange_target=D(112))  # fmt: skip
    _, used = await attempts(lambda: backend.modify(move))
    assert used == 1 and ex.stats.answers_lost == 1  # adopted after recvWindow, not sent again
    await attempts(lambda: backend.modify(move))  # a retry after success: nothing new
    lists = sorted({o.order_list_id for o in ex.orders_of(API_KEY) if o.order_list_id >= 0})
    assert [legs(account, i) for i in lists] == [
        [("LIMIT_MAKER", "CANCELED", D(110)), ("STOP_LOSS_LIMIT", "CANCELED", D("94.52"))],
        [("LIMIT_MAKER", "NEW", D(112)), ("STOP_LOSS_LIMIT", "NEW", D("95.52"))],
    ]
    new_stop = client_order_id(protective_key(move.key, "m"))
    assert await db.fetchval("SELECT protective_order_id FROM positions WHERE id = $1", position_id) == new_stop
    await agree(db, account, row)
    # Closing cancels the whole list, then sells once.
    fill, _ = await attempts(lambda: backend.exit(exit_request(row, "close")))
    assert fill.kind == "close" and fill.quantity == D("4.995")
    assert legs(account, lists[1]) == [("LIMIT_MAKER", "CANCELED", D(112)), ("STOP_LOSS_LIMIT", "CANCELED", D("95.52"))]
    assert len(sells(account)) == 1
    await agree(db, account, row)


async def test_a_target_filled_on_the_exchange_is_the_exit(db, live) -> None:
    account, backend = live
    ex = account.exchange
    row, _ = await opened_with_oco(db, account, backend)
    ex.trade_at("BTCUSDT", "106")
    ex.trade_at("BTCUSDT", "110.4")  # the target fills at 110; the exchange expires the stop leg
    position_id = f"live-{row.signal_id}"
    reconcile = ReconcileInput(key=f"{row.signal_id}:1:reconcile", position_id=position_id, signal_id=row.signal_id)
    found, _ = await attempts(lambda: backend.reconcile(reconcile))
    assert found.fill is not None
    assert (found.fill.kind, found.fill.price, found.fill.quantity) == ("take_profit", D(110), D("4.995"))
    # (110 - 100) x 4.995 - 0.1 % of 549.45 USDT (the entry's fee was booked at the open)
    assert found.fill.realized_pnl == D("49.95") - D("0.54945")
    again, _ = await attempts(lambda: backend.reconcile(reconcile))
    assert again.fill is not None and again.fill.order_id == found.fill.order_id and not again.fill.inserted
    pos = await db.fetchrow("SELECT * FROM positions WHERE id = $1", position_id)
    assert (pos["status"], pos["exit_price"], pos["contracts"]) == ("closed", D(110), 0)
    assert pos["close_reason"] == "take_profit filled on the exchange"
    assert sells(account) == [] and [o.status for o in sells(account, "LIMIT_MAKER")] == ["FILLED"]
    assert [o.status for o in sells(account, "STOP_LOSS_LIMIT")] == ["EXPIRED"]
    rows = await agree(db, account, row)
    assert {r["status"] for r in rows.values()} == {"closed", "expired"}
    # A close request meeting a target that filled: the target is the exit, nothing is sold.
    ex.trade_at("BTCUSDT", "100")
    row2, _ = await opened_with_oco(db, account, backend)
    ex.trade_at("BTCUSDT", "111")
    fill, _ = await attempts(lambda: backend.exit(exit_request(row2, "close", kind="take_profit")))
    assert (fill.kind, fill.price) == ("take_profit", D(110)) and sells(account) == []
    await agree(db, account, row2)


async def test_a_reached_target_rests_the_stop_alone_and_an_unrestable_stop_exits_at_once(db, live) -> None:
    account, backend = live
    ex = account.exchange
    ex.trade_at("BTCUSDT", "101")
    row, request = await entry(db, account)
    # The target (100.5) is under the market already: the OCO is refused, the stop rests alone.
    await attempts(lambda: backend.open(request.model_copy(update={"exchange_target": D("100.5")}), account.account_id))
    assert [(o.type, o.status) for o in ex.orders_of(API_KEY) if o.side == "SELL"] == [("STOP_LOSS_LIMIT", "NEW")]
    rows = await agree(db, account, row)
    assert sorted(r["status"] for r in rows.values()) == ["closed", "open", "rejected", "rejected"]
    # A stop over the market cannot rest: one emergency sell at once, recorded with its reason.
    row2, request2 = await entry(db, account, stop_loss=D(102))
    request2 = request2.model_copy(update={"exchange_target": D(110)})
    for _ in range(2):  # a retried open sells nothing more
        await attempts(lambda: backend.open(request2, account.account_id))
    (emergency,) = sells(account)
    assert (emergency.status, emergency.executed_qty) == ("FILLED", D("4.995"))
    pos = await db.fetchrow("SELECT * FROM positions WHERE id = $1", f"live-{row2.signal_id}")
    assert pos["status"] == "closed" and pos["close_reason"].startswith("emergency exit: the stop 102")
    assert not [o for o in ex.orders_of(API_KEY) if o.type == "LIMIT_MAKER"]
    await agree(db, account, row2)


async def test_a_stop_put_back_under_the_market_is_an_emergency_exit_at_the_reconcile(db, live) -> None:
    account, backend = live
    ex = account.exchange
    row, request = await entry(db, account)
    await attempts(lambda: backend.open(request, account.account_id))
    position_id = f"live-{row.signal_id}"
    stop_cid = await db.fetchval("SELECT protective_order_id FROM positions WHERE id = $1", position_id)
    # The exchange cancels the stop, and the market falls under it before anyone looks.
    ex.cancel_by_exchange(stop_cid)
    ex.trade_at("BTCUSDT", "94")
    reconcile = ReconcileInput(key=f"{row.signal_id}:1:reconcile", position_id=position_id, signal_id=row.signal_id)
    found, _ = await attempts(lambda: backend.reconcile(reconcile))
    assert found.fill is not None and (found.fill.kind, found.fill.price, found.fill.quantity) == (
        "stop_loss", D(94), D("4.995"))  # fmt: skip
    again, _ = await attempts(lambda: backend.reconcile(reconcile))
    assert again.fill is not None and again.fill.order_id == found.fill.order_id and not again.fill.inserted
    (emergency,) = sells(account)
    assert emergency.client_order_id == found.fill.order_id
    pos = await db.fetchrow("SELECT * FROM positions WHERE id = $1", position_id)
    assert (pos["status"], pos["exit_price"]) == ("closed", D(94))
    assert pos["close_reason"] == "emergency exit: the stop 95 would trigger immediately (sold at market)"
    await agree(db, account, row)
    flag = await db.fetchval("SELECT metadata ->> 'emergency' FROM orders WHERE id = $1", emergency.client_order_id)
    assert flag == "true"
