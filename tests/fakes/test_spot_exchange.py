"""The local spot exchange (fakes/binance/spot_api.py) driven through ccxt itself: Binance's
signing, filters, client-id rules, matcher and each scheduled fault as a client meets them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from activities.live.client import new_client
from fakes.binance import FakeBinance
from fakes.binance.spot_api import FakeSpotExchange

SYMBOL = "BTC/USDT"


@pytest.fixture
async def exchange() -> AsyncIterator[FakeSpotExchange]:
    async with FakeSpotExchange() as ex:
        ex.open_account("key-1", "secret-1", {"USDT": 1000})
        ex.trade_at("BTCUSDT", 100)
        yield ex


@pytest.fixture
async def client(exchange: FakeSpotExchange) -> AsyncIterator[ccxt.binance]:
    c = new_client(exchange.base_url, "key-1", "secret-1", timeout_seconds=2)
    await c.load_markets()
    yield c
    await c.close()


def code_of(err: Exception) -> int:
    """Binance's code from the error's text (ccxt quotes the body in most of its errors)."""
    return json.loads(str(err)[str(err).index("{") :])["code"]


async def test_market_buy_fills_at_the_price_with_the_fee_in_the_asset_bought(client, exchange) -> None:
    order = await client.create_order(SYMBOL, "market", "buy", 0.5, None, {"clientOrderId": "entry-1"})
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.5, 100.0)
    assert order["fees"] == [{"currency": "BTC", "cost": 0.0005}]
    balance = await client.fetch_balance()
    assert (balance["BTC"]["free"], balance["USDT"]["free"]) == (0.4995, 950.0)
    again = await client.fetch_order(None, SYMBOL, {"clientOrderId": "entry-1"})
    assert (again["id"], again["status"]) == (order["id"], "closed")
    trades = await client.fetch_my_trades(SYMBOL)
    assert [(t["order"], t["amount"], t["price"]) for t in trades] == [(order["id"], 0.5, 100.0)]


async def test_signature_and_recv_window_are_checked(exchange) -> None:
    wrong = new_client(exchange.base_url, "key-1", "not-the-secret")
    skewed = FakeSpotExchange(clock_offset_ms=-60_000)  # the client must follow the server's clock
    try:
        with pytest.raises(ccxt.ExchangeError) as err:
            await wrong.fetch_balance()
        assert code_of(err.value) == -1022
        async with skewed:
            skewed.open_account("key-1", "secret-1", {"USDT": 10})
            c = new_client(skewed.base_url, "key-1", "secret-1")
            try:
                await c.load_markets()  # measures the offset once
                assert (await c.fetch_balance())["USDT"]["free"] == 10.0
                skewed.clock_offset_ms = 60_000  # the server's clock jumps: the measured offset is stale
                with pytest.raises(ccxt.InvalidNonce) as err:
                    await c.fetch_balance()
                assert code_of(err.value) == -1021
                await c.load_time_difference()  # what the backend does after a -1021
                assert (await c.fetch_balance())["USDT"]["free"] == 10.0
            finally:
                await c.close()
    finally:
        await wrong.close()


async def test_filters_client_ids_and_duplicates(client, exchange) -> None:
    # ccxt rounds to the step itself; below the minimum notional is the exchange's -1013.
    with pytest.raises(ccxt.ExchangeError) as err:
        await client.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "small"})
    assert code_of(err.value) == -1013
    with pytest.raises(ccxt.ExchangeError) as err:
        await client.create_order(SYMBOL, "market", "buy", 0.1, None, {"clientOrderId": "sig:1:open"})
    assert code_of(err.value) == -1100
    with pytest.raises(ccxt.ExchangeError) as err:
        await client.create_order(SYMBOL, "market", "buy", 50, None, {"clientOrderId": "too-much"})
    assert isinstance(err.value, ccxt.InsufficientFunds)  # ccxt matched the message, body not quoted
    assert client.last_json_response == {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    await client.create_order(SYMBOL, "limit", "buy", 0.1, 90, {"clientOrderId": "resting"})
    with pytest.raises(ccxt.ExchangeError) as err:
        await client.create_order(SYMBOL, "limit", "buy", 0.1, 90, {"clientOrderId": "resting"})
    assert "Duplicate order sent." in str(err.value)
    # A filled order's id is accepted again: a blind retry of a filled market order buys twice.
    await client.create_order(SYMBOL, "market", "buy", 0.1, None, {"clientOrderId": "twice"})
    await client.create_order(SYMBOL, "market", "buy", 0.1, None, {"clientOrderId": "twice"})
    assert [o.client_order_id for o in exchange.orders_of("key-1")].count("twice") == 2


async def test_stops_rest_trigger_on_the_candles_and_move_by_cancel_replace(client, exchange) -> None:
    await client.create_order(SYMBOL, "market", "buy", 1, None, {"clientOrderId": "entry"})
    with pytest.raises(ccxt.ExchangeError) as err:
        await client.create_order(SYMBOL, "STOP_LOSS_LIMIT", "sell", 0.99, 100, {"stopPrice": 101, "clientOrderId": "s0"})  # fmt: skip
    assert "Order would trigger immediately." in str(err.value)
    await client.create_order(SYMBOL, "STOP_LOSS_LIMIT", "sell", 0.99, 94, {"stopPrice": 95, "clientOrderId": "s1"})
    replaced = await client.privatePostOrderCancelReplace(
        {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS_LIMIT", "quantity": "0.99", "price": "96",
         "stopPrice": "97", "timeInForce": "GTC", "cancelReplaceMode": "STOP_ON_FAILURE",
         "cancelOrigClientOrderId": "s1", "newClientOrderId": "s2"}
    )  # fmt: skip
    assert (replaced["cancelResult"], replaced["newOrderResponse"]["clientOrderId"]) == ("SUCCESS", "s2")
    async with FakeBinance(speed=600, start_prices={"BTCUSDT": "100"}) as market:
        exchange.follow(market)
        # A candle falling through 97: the stop fills about at its level, from the replayed frames.
        k = {"s": "BTCUSDT", "o": "100", "h": "100.5", "l": "96.5", "c": "96.8", "i": "1m", "x": True}
        await market.publish({"stream": "btcusdt@kline_1m", "data": {"e": "kline", "k": k}})
    stop = await client.fetch_order(None, SYMBOL, {"clientOrderId": "s2"})
    assert (stop["status"], stop["filled"], stop["average"]) == ("closed", 0.99, 97.0)
    old = await client.fetch_order(None, SYMBOL, {"clientOrderId": "s1"})
    assert old["status"] == "canceled"
    # The stop filled during a replace: the cancel fails, nothing new is placed.
    with pytest.raises(ccxt.ExchangeError) as err:
        await client.privatePostOrderCancelReplace(
            {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS_LIMIT", "quantity": "0.99", "price": "95",
             "stopPrice": "96", "timeInForce": "GTC", "cancelReplaceMode": "STOP_ON_FAILURE",
             "cancelOrigClientOrderId": "s2", "newClientOrderId": "s3"}
        )  # fmt: skip
    assert code_of(err.value) == -2022
    assert not await client.fetch_open_orders(SYMBOL)


async def test_oco_one_leg_fills_the_other_expires(client, exchange) -> None:
    await client.create_order(SYMBOL, "market", "buy", 1, None, {"clientOrderId": "entry"})
    answer = await client.privatePostOrderListOco(
        {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.99", "aboveType": "LIMIT_MAKER", "abovePrice": "110",
         "aboveClientOrderId": "tp", "belowType": "STOP_LOSS_LIMIT", "belowStopPrice": "95", "belowPrice": "94",
         "belowTimeInForce": "GTC", "belowClientOrderId": "sl", "listClientOrderId": "oco1"}
    )  # fmt: skip
    assert [o["clientOrderId"] for o in answer["orders"]] == ["tp", "sl"]
    assert (await client.fetch_balance())["BTC"]["used"] == 0.99
    exchange.trade_at("BTCUSDT", 111)
    tp = await client.fetch_order(None, SYMBOL, {"clientOrderId": "tp"})
    sl = await client.fetch_order(None, SYMBOL, {"clientOrderId": "sl"})
    assert (tp["status"], tp["average"], sl["status"]) == ("closed", 110.0, "expired")


async def test_oco_stop_trigger_expires_the_target_and_one_leg_cancelled_cancels_the_list(client, exchange) -> None:
    await client.create_order(SYMBOL, "market", "buy", 2, None, {"clientOrderId": "entry"})
    for n in (1, 2):
        await client.privatePostOrderListOco(
            {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.99", "aboveType": "LIMIT_MAKER", "abovePrice": "110",
             "aboveClientOrderId": f"tp{n}", "belowType": "STOP_LOSS_LIMIT", "belowStopPrice": "95",
             "belowPrice": "90", "belowTimeInForce": "GTC", "belowClientOrderId": f"sl{n}",
             "listClientOrderId": f"oco{n}"}
        )  # fmt: skip
    # Binance: cancelling one leg of an order list cancels the whole list.
    await client.cancel_order(None, SYMBOL, {"clientOrderId": "tp2"})
    assert [(await client.fetch_order(None, SYMBOL, {"clientOrderId": c}))["status"] for c in ("tp2", "sl2")] == [
        "canceled",
        "canceled",
    ]
    # The stop leg triggering fills it (about at the stop when crossed) and expires the target leg.
    exchange.trade_at("BTCUSDT", 94)
    tp = await client.fetch_order(None, SYMBOL, {"clientOrderId": "tp1"})
    sl = await client.fetch_order(None, SYMBOL, {"clientOrderId": "sl1"})
    assert (tp["status"], sl["status"], sl["average"]) == ("expired", "closed", 95.0)
    balance = await client.fetch_balance()
    assert balance["BTC"]["used"] == 0 and balance["BTC"]["total"] == pytest.approx(1.998 - 0.99)


async def test_answers_lost_after_the_order_was_accepted(client, exchange) -> None:
    for n, mode in enumerate(("drop", "5xx", "-1007")):
        exchange.faults.lose_answer.append(("/order", mode))
        with pytest.raises(ccxt.BaseError):
            await client.create_order(SYMBOL, "market", "buy", 0.1, None, {"clientOrderId": f"lost-{n}"})
        found = await client.fetch_order(None, SYMBOL, {"clientOrderId": f"lost-{n}"})
        assert found["status"] == "closed"  # it exists: a blind resend would buy again
    exchange.faults.late_seconds = 3
    exchange.faults.lose_answer.append(("/order", "late"))
    with pytest.raises(ccxt.RequestTimeout):
        await client.create_order(SYMBOL, "market", "buy", 0.1, None, {"clientOrderId": "late"})
    assert exchange.stats.answers_lost == 4


async def test_rate_limit_then_ban_read_lag_and_partial_fills(client, exchange) -> None:
    exchange.faults.rate_limits.append(1)
    with pytest.raises(ccxt.DDoSProtection):
        await client.fetch_balance()
    assert client.last_response_headers["Retry-After"] == "1"
    with pytest.raises(ccxt.DDoSProtection) as err:
        await client.fetch_balance()  # before Retry-After passed: banned
    assert "418" in str(err.value)
    await asyncio.sleep(exchange.faults.ban_seconds + 0.1)
    exchange.faults.read_lag_seconds = 0.5
    await client.create_order(SYMBOL, "market", "buy", 0.1, None, {"clientOrderId": "lagging"})
    with pytest.raises(ccxt.OrderNotFound):
        await client.fetch_order(None, SYMBOL, {"clientOrderId": "lagging"})
    await asyncio.sleep(0.6)
    assert (await client.fetch_order(None, SYMBOL, {"clientOrderId": "lagging"}))["status"] == "closed"
    exchange.faults.read_lag_seconds = 0
    exchange.split_next_market(3)
    split = await client.create_order(SYMBOL, "market", "buy", 0.3, None, {"clientOrderId": "split"})
    assert len(split["trades"]) == 3 and split["filled"] == 0.3 and split["average"] > 100
    exchange.expire_next_market("0.5")
    half = await client.create_order(SYMBOL, "market", "buy", 0.2, None, {"clientOrderId": "half"})
    assert (half["status"], half["filled"]) == ("expired", 0.1)
    await client.create_order(SYMBOL, "limit", "buy", 0.1, 80, {"clientOrderId": "resting"})
    exchange.cancel_by_exchange("resting")
    assert (await client.fetch_order(None, SYMBOL, {"clientOrderId": "resting"}))["status"] == "canceled"
    assert Decimal(str((await client.fetch_balance())["USDT"]["free"])) < 1000
