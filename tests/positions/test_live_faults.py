"""Each fault of the exchange notes, met by the live backend on the local spot exchange through
ccxt and PostgreSQL: afterwards exactly one order per intended action on the exchange, and the
`orders` / `positions` rows agree with it.

The backend's activity methods are called here as Temporal calls them: again after a retryable
error (after its `next_retry_delay` when it gives one), never after a non-retryable one. The
workflow around them is exercised in tests/test_live_orders.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal as D
from typing import Any, TypeVar

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError

from activities.live.accounts import load_keys_file
from activities.live.backend import LiveExecution, LiveSettings
from activities.live.client_ids import client_order_id, protective_key
from tests.helpers.live import API_KEY, LiveAccount, live_backend, make_live
from tests.helpers.positions import entered_signal
from tests.helpers.support import SignalRow
from workflows.common import names
from workflows.position.models import ModifyInput, OpenPositionInput, OrderInput, ReconcileInput

T = TypeVar("T")
FAULT_TABLE: list[tuple[str, str]] = []  # (fault, what happened), printed with -s


@pytest.fixture
async def pool(database_url) -> AsyncIterator[asyncpg.Pool]:
    from activities.database import create_pool

    p = await create_pool(database_url, 4)
    yield p
    await p.close()


@pytest.fixture
async def live(db, pool) -> AsyncIterator[tuple[LiveAccount, LiveExecution]]:
    async with live_backend(pool) as live:
        yield live


async def attempts(call: Callable[[], Awaitable[T]], limit: int = 8) -> tuple[T, int]:
    """Like Temporal's retries: again after a retryable failure; the result and the attempts used."""
    for n in range(1, limit + 1):
        try:
            return await call(), n
        except ApplicationError as err:
            if err.non_retryable or n == limit:
                raise
            delay = err.next_retry_delay.total_seconds() if err.next_retry_delay else 0.2
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def entry(db, account: LiveAccount, **kw: Any) -> tuple[SignalRow, OpenPositionInput]:
    row = await entered_signal(db, stop_loss=95.0, take_profits=[110.0])
    await make_live(db, row, account)
    request = OpenPositionInput(
        key=f"{row.signal_id}:open", signal_id=row.signal_id, trader_id=row.trader_id, user_id=row.user_id,
        symbol="BTCUSDT", side="long", reference_price=D(100), stake=kw.pop("stake", D(500)),
        stop_loss=kw.pop("stop_loss", D(95)), take_profits=[D(110)],
    )  # fmt: skip
    return row, request


def exit_request(row: SignalRow, key: str, close: bool = True, qty: D = D(0), kind: str = "close") -> OrderInput:
    return OrderInput(
        key=f"{row.signal_id}:{key}", signal_id=row.signal_id, position_id=f"live-{row.signal_id}",
        user_id=row.user_id, symbol="BTCUSDT", side="long", kind=kind, quantity=qty,
        reference_price=D(100), market=True, close=close, close_reason="test",
    )  # fmt: skip


def on_exchange(account: LiveAccount, cid: str) -> list[Any]:
    return [o for o in account.exchange.orders_of(API_KEY) if o.client_order_id == cid]


async def agree(db, account: LiveAccount, row: SignalRow) -> dict[str, asyncpg.Record]:
    """Every order row of the signal matches the exchange's order of that client id, one each."""
    rows = {r["id"]: r for r in await db.fetch("SELECT * FROM orders WHERE signal_id = $1", row.signal_id)}
    for cid, r in rows.items():
        listed = on_exchange(account, cid)
        if r["status"] == "rejected":
            assert listed == [], (cid, listed)
            continue
        assert len(listed) == 1, (cid, [(o.side, o.type, o.status) for o in listed])
        (o,) = listed
        assert (r["filled"], r["quantity"]) == (o.executed_qty, o.orig_qty), cid
        status = {"FILLED": "closed", "NEW": "open", "CANCELED": "canceled", "EXPIRED": "expired"}[o.status]
        assert r["status"] == status, (cid, r["status"], o.status)
    ours = {o.client_order_id for o in account.exchange.orders_of(API_KEY)}
    signal_ids = {cid for cid in ours if cid in rows}
    assert signal_ids == {cid for cid, r in rows.items() if r["status"] != "rejected"}
    return rows


def note(fault: str, outcome: str) -> None:
    FAULT_TABLE.append((fault, outcome))
    print(f"| {fault} | {outcome} |")


@pytest.mark.parametrize("mode", ["drop", "5xx", "-1007", "late"])
async def test_entry_answer_lost_after_accept(db, live, mode) -> None:
    account, backend = live
    row, request = await entry(db, account)
    account.exchange.faults.lose_answer.append(("/order", mode))
    account.exchange.faults.late_seconds = 2.0
    started = time.monotonic()
    opened, used = await attempts(lambda: backend.open(request, account.account_id))
    cid = client_order_id(request.key)
    assert len(on_exchange(account, cid)) == 1 and opened.fill.quantity == D("4.995")
    rows = await agree(db, account, row)
    assert rows[cid]["status"] == "closed"
    # Resolved by looking again once the recvWindow passed, not by sending again.
    assert account.exchange.stats.requests["POST /order"] == 2  # the entry, then the resting stop
    note(f"entry answer lost ({mode})", f"1 order, adopted after {time.monotonic() - started:.1f} s, {used} attempt(s)")


async def test_entry_clock_faults_and_rate_limits(db, live) -> None:
    account, backend = live
    ex = account.exchange
    row, request = await entry(db, account)
    ex.faults.reject_timestamp = 1
    await attempts(lambda: backend.open(request, account.account_id))
    assert ex.stats.timestamp_refusals == 1
    note("-1021 once", "clock resynced, sent again (it never executed): 1 order")
    # The exchange's clock jumps 30 s ahead (beyond recvWindow): measured again after the -1021.
    ex.clock_offset_ms = 30_000
    row2, request2 = await entry(db, account)
    await attempts(lambda: backend.open(request2, account.account_id))
    note("clock skew beyond recvWindow", "-1021, offset measured again, 1 order")
    ex.faults.rate_limits.append(1)
    row3, request3 = await entry(db, account)
    _, used = await attempts(lambda: backend.open(request3, account.account_id))
    assert used == 2 and ex.stats.rate_limited == 1 and ex.stats.banned == 0
    note("429 with Retry-After", "next attempt after Retry-After: no 418, 1 order")
    for r in (row, row2, row3):
        await agree(db, account, r)
        assert len(on_exchange(account, client_order_id(f"{r.signal_id}:open"))) == 1


async def test_refusals_are_recorded_never_retried(db, live) -> None:
    account, backend = live
    ex = account.exchange
    _row, small = await entry(db, account, stake=D(3))
    with pytest.raises(ApplicationError) as err:
        await backend.open(small, account.account_id)
    assert err.value.non_retryable and err.value.type == names.INVALID_SIGNAL_DATA
    assert "minimum notional" in err.value.message and ex.stats.requests["POST /order"] == 0
    cid = client_order_id(small.key)
    assert await db.fetchval("SELECT status FROM orders WHERE id = $1", cid) == "rejected"
    note("-1013 filter (too small)", "refused before sending, recorded `rejected`, no retry")
    _row2, big = await entry(db, account, stake=D(5000))
    with pytest.raises(ApplicationError) as err:
        await backend.open(big, account.account_id)
    assert err.value.non_retryable and "insufficient balance" in err.value.message
    assert await db.fetchval("SELECT status FROM orders WHERE id = $1", client_order_id(big.key)) == "rejected"
    assert on_exchange(account, client_order_id(big.key)) == []
    note("-2010 insufficient balance", "non-retryable, recorded `rejected`, no order")
    _row3, short = await entry(db, account)
    with pytest.raises(ApplicationError) as err:
        await backend.open(short.model_copy(update={"side": "short"}), account.account_id)
    assert "spot only" in err.value.message and err.value.type == names.INVALID_SIGNAL_DATA
    note("short on a spot account", "refused with its reason, no order")
    assert ex.stats.requests["POST /order"] == 1  # only the insufficient-balance attempt reached it
    note("-1100 bad client id", "prevented: ids are derived `sm` + base32 digest (unit-tested)")


async def test_read_side_lag_and_duplicate_while_open(db, live) -> None:
    account, backend = live
    ex = account.exchange
    row, request = await entry(db, account)
    # The entry's answer is lost and the order is invisible for 1 s (< recvWindow): -2013 at first.
    ex.faults.read_lag_seconds = 1.0
    ex.faults.lose_answer.append(("/order", "drop"))
    await attempts(lambda: backend.open(request, account.account_id))
    assert len(on_exchange(account, client_order_id(request.key))) == 1
    note("-2013 while the read side lags", "not final before recvWindow: found after it, 1 order")
    # Moving the stop: the new stop's answer is lost and it stays invisible longer than the window:
    # the next attempt's send meets "Duplicate order sent." (it is open) and adopts it.
    ex.faults.read_lag_seconds = 3.5
    ex.faults.lose_answer.append(("/order/cancelReplace", "drop"))
    modify = ModifyInput(key=f"{row.signal_id}:m1", position_id=f"live-{row.signal_id}", stop_loss=D(96),
                         take_profits=[D(110)])  # fmt: skip
    await attempts(lambda: backend.modify(modify), limit=12)
    ex.faults.read_lag_seconds = 0
    stop_cid = client_order_id(protective_key(modify.key, "m"))
    assert [o.status for o in on_exchange(account, stop_cid)] == ["NEW"]
    assert ex.stats.refusals["-2010 Duplicate order sent."] >= 1
    assert await db.fetchval("SELECT protective_order_id FROM positions WHERE id = $1", modify.position_id) == stop_cid
    await agree(db, account, row)
    note("duplicate id while open", "adopted, never re-sent: 1 resting stop")


async def test_partial_fills_expired_and_exchange_cancelled(db, live) -> None:
    account, backend = live
    ex = account.exchange
    row, request = await entry(db, account)
    ex.split_next_market(3)
    opened, _ = await attempts(lambda: backend.open(request, account.account_id))
    assert opened.fill.price > D(100) and opened.fill.quantity == D("4.995")
    entry_row = await db.fetchrow("SELECT * FROM orders WHERE id = $1", client_order_id(request.key))
    assert entry_row["average_price"] == opened.fill.price and entry_row["filled"] == D(5)
    note("partial fills (3 trades)", f"average {opened.fill.price} from the fills, fee in BTC shrinks the position")
    # The exchange cancels the resting stop; the close finds it gone and sells at market.
    stop_cid = await db.fetchval("SELECT protective_order_id FROM positions WHERE id = $1", f"live-{row.signal_id}")
    ex.cancel_by_exchange(stop_cid)
    ex.expire_next_market("0.6")
    fill, _ = await attempts(lambda: backend.exit(exit_request(row, "close")))
    assert fill.quantity == D("2.997")  # 60 % of 4.995 filled, then EXPIRED
    position = await db.fetchrow("SELECT * FROM positions WHERE id = $1", f"live-{row.signal_id}")
    assert position["status"] == "closed"
    rows = await agree(db, account, row)
    assert rows[client_order_id(f"{row.signal_id}:close")]["status"] == "expired"
    note("order cancelled by the exchange", "close found it gone: sold at market, 1 sell")
    note("market order EXPIRED (60 % filled)", "executed part recorded from fills, row `expired`")
    # Closing again (a retried activity) finds its own order: nothing new.
    again, _ = await attempts(lambda: backend.exit(exit_request(row, "close")))
    assert again.order_id == fill.order_id and not again.inserted
    assert len([o for o in ex.orders_of(API_KEY) if o.side == "SELL" and o.type == "MARKET"]) == 1


async def test_stop_would_trigger_and_stop_filled_during_replace(db, live) -> None:
    account, backend = live
    ex = account.exchange
    _row, request = await entry(db, account, stop_loss=D(101))
    _opened, _ = await attempts(lambda: backend.open(request, account.account_id))
    stop_cid = client_order_id(protective_key(request.key, "0"))
    assert await db.fetchval("SELECT status FROM orders WHERE id = $1", stop_cid) == "rejected"
    assert on_exchange(account, stop_cid) == []
    # Unprotectable: an emergency exit at market at once, exactly once (a retried open sells nothing more).
    await attempts(lambda: backend.open(request, account.account_id))
    sells = [o for o in ex.orders_of(API_KEY) if o.side == "SELL" and o.client_order_id != stop_cid]
    assert [(o.type, o.status, o.executed_qty) for o in sells] == [("MARKET", "FILLED", D("4.995"))]
    pos = await db.fetchrow("SELECT * FROM positions WHERE id = $1", f"live-{_row.signal_id}")
    assert (pos["status"], pos["contracts"], pos["exit_price"]) == ("closed", 0, D(100))
    assert pos["close_reason"] == "emergency exit: the stop 101 would trigger immediately (sold at market)"
    found = await backend.reconcile(ReconcileInput(key=f"{_row.signal_id}:1:reconcile",
                                                   position_id=pos["id"], signal_id=_row.signal_id))  # fmt: skip
    assert found.fill is not None and (found.fill.kind, found.fill.price, found.fill.quantity) == (
        "stop_loss", D(100), D("4.995"))  # fmt: skip
    await agree(db, account, _row)
    note(
        "stop would trigger immediately",
        "`rejected` row; emergency exit at market at once (1 sell, a retry sells nothing more), booked at the next reconcile",
    )
    row2, request2 = await entry(db, account)
    await attempts(lambda: backend.open(request2, account.account_id))
    ex.trade_at("BTCUSDT", "94.9")  # the resting stop (95) fills
    modify = ModifyInput(key=f"{row2.signal_id}:m1", position_id=f"live-{row2.signal_id}", stop_loss=D(94),
                         take_profits=[])  # fmt: skip
    await attempts(lambda: backend.modify(modify))
    fill, _ = await attempts(lambda: backend.exit(exit_request(row2, "close", kind="stop_loss")))
    assert fill.price == D(95) and fill.kind == "stop_loss"
    assert [o for o in ex.orders_of(API_KEY) if o.type == "MARKET" and o.side == "SELL"] == sells
    await agree(db, account, row2)
    note("stop filled during a replace", "-2022: nothing new placed; the exit is the stop's real fill")


async def test_killed_between_send_and_record(db, live, pool) -> None:
    """The send's answer never reaches a worker that is gone: the `pending` row (written before the
    request left) makes the next attempt wait out recvWindow and adopt the order."""
    account, backend = live
    row, request = await entry(db, account)
    account.exchange.faults.lose_answer.append(("/order", "late"))
    account.exchange.faults.late_seconds = 5
    task = asyncio.ensure_future(backend.open(request, account.account_id))
    cid = client_order_id(request.key)
    for _ in range(100):
        if on_exchange(account, cid):
            break
        await asyncio.sleep(0.02)
    task.cancel()  # the worker dies with the request sent
    await asyncio.gather(task, return_exceptions=True)
    assert await db.fetchval("SELECT status FROM orders WHERE id = $1", cid) == "pending"
    other = LiveExecution(pool, load_keys_file(account.keys_file),
                          LiveSettings(exchange_url=account.exchange.base_url, recv_window_ms=2000))  # fmt: skip
    opened, _ = await attempts(lambda: other.open(request, account.account_id))
    assert len(on_exchange(account, cid)) == 1 and opened.fill.quantity == D("4.995")
    await agree(db, account, row)
    note("worker gone between the POST and recording", "pending row found: waited out recvWindow, adopted: 1 order")


async def test_exchange_accounts_need_keys(db, live) -> None:
    account, backend = live
    row, request = await entry(db, account)
    stranger = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO exchange_accounts (id, user_id, exchange, api_key, api_secret) VALUES ($1, $2, 'binance', 'k', 's')",
        uuid.UUID(stranger),
        uuid.UUID(row.user_id),
    )
    with pytest.raises(ApplicationError) as err:
        await backend.open(request, stranger)
    assert err.value.non_retryable and "no keys in the worker's keys file" in err.value.message


async def test_close_after_a_hand_sale_sells_what_is_held(db, live) -> None:
    account, backend = live
    ex = account.exchange
    row, request = await entry(db, account)
    await attempts(lambda: backend.open(request, account.account_id))
    stop_cid = await db.fetchval("SELECT protective_order_id FROM positions WHERE id = $1", f"live-{row.signal_id}")
    ex.cancel_by_exchange(stop_cid)
    ex.book.place(ex.book.accounts[API_KEY], symbol="BTCUSDT", side="SELL", type="MARKET", qty=D(3),
                  price=None, stop_price=None, client_id="by-hand", time_in_force=None, now_ms=ex.now_ms())  # fmt: skip
    fill, _ = await attempts(lambda: backend.exit(exit_request(row, "close")))
    assert fill.quantity == D("1.995")
    position = await db.fetchrow("SELECT * FROM positions WHERE id = $1", f"live-{row.signal_id}")
    assert position["status"] == "closed" and "balance lower than the position" in position["close_reason"]
    first = await db.fetchrow("SELECT status FROM orders WHERE id = $1", client_order_id(f"{row.signal_id}:close"))
    assert first["status"] == "rejected"
    again, _ = await attempts(lambda: backend.exit(exit_request(row, "close")))
    assert again.order_id == fill.order_id and not again.inserted
    sells = [
        o for o in ex.orders_of(API_KEY) if o.side == "SELL" and o.type == "MARKET" and o.client_order_id != "by-hand"
    ]
    assert [(o.status, o.executed_qty) for o in sells] == [("FILLED", D("1.995"))]
    note("close after a hand sale", "-2010: balance read, what is held sold under a second id: 1 sell")
