"""FakeSpotExchange: Binance's signed spot REST API on a local port, over `spot_book`'s books.

Served: `/api/v3/time`, `/api/v3/exchangeInfo`, `/api/v3/account`, `/api/v3/order` (POST, GET,
DELETE; by `orderId` or `origClientOrderId`), `/api/v3/openOrders`, `/api/v3/allOrders`,
`/api/v3/myTrades`, `/api/v3/order/cancelReplace`, `/api/v3/orderList/oco`, `/api/v3/orderList`
(DELETE). Signed requests need `X-MBX-APIKEY`, a hex HMAC-SHA256 `signature` over the query
string followed by the body, and a `timestamp` within `recvWindow` of the server's clock.

Faults are scheduled on `self.faults` and each is used up by the request it hits: the answer lost
after the order was accepted (dropped connection, a late answer, 5xx, -1007), -1021 once, 429
with `Retry-After` (a request before it passed earns a 418 ban), the read side lagging (a new
order is invisible to queries for a while), market orders filled in pieces or ending EXPIRED.
Prices come from `trade_at` (tests) or from a `FakeBinance`'s candles (`follow`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from fakes.local_server import LocalServer, serve_app

from .spot_book import ExchangeRefusal, FillPlan, Order, SpotBook, SymbolInfo

log = logging.getLogger("fakes.binance.spot")

LOST_MODES = ("drop", "late", "5xx", "-1007")


@dataclass
class SpotFaults:
    """What the next requests meet. `lose_answer`: (path, mode) pairs, each for the next matching
    request that the exchange *accepts*: it is processed, then its answer is lost."""

    lose_answer: list[tuple[str, str]] = field(default_factory=list)
    late_seconds: float = 3.0
    reject_timestamp: int = 0  # the next N signed requests: -1021
    rate_limits: list[float] = field(default_factory=list)  # 429 with these Retry-After seconds
    ban_seconds: float = 2.0
    read_lag_seconds: float = 0.0  # orders created now stay invisible this long
    server_errors: int = 0  # the next N requests: 503 before anything is done


@dataclass
class SpotStats:
    requests: Counter = field(default_factory=Counter)  # "METHOD path" -> count
    answers_lost: int = 0
    rate_limited: int = 0
    banned: int = 0
    timestamp_refusals: int = 0
    signature_refusals: int = 0
    refusals: Counter = field(default_factory=Counter)  # "code msg" -> count of error answers


class FakeSpotExchange(LocalServer):
    """`async with FakeSpotExchange() as ex: ex.api_url ...` (the `/api/v3` base for ccxt)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        symbols: dict[str, SymbolInfo] | None = None,
        clock_offset_ms: int = 0,
        latency_ms: float = 0.0,
    ) -> None:
        """`latency_ms`: added to every answer (a network round trip to the real exchange)."""
        self.host = host
        self.port: int = port  # the one it listens on once started
        self.book = SpotBook(symbols)
        self.faults = SpotFaults()
        self.stats = SpotStats()
        # The server's clock minus the wall clock (skew a client must measure and follow).
        self.clock_offset_ms = clock_offset_ms
        self.latency_ms = latency_ms
        self._banned_until = 0.0
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> FakeSpotExchange:
        app = web.Application()
        app.router.add_route("*", "/api/v3/{tail:.*}", self._handle)
        self._runner, self.port = await serve_app(app, self.host, self.port, handler_cancellation=True)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v3"

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    # ---- driving it ------------------------------------------------------------------------
    def open_account(self, api_key: str, secret: str, balances: dict[str, Any]) -> None:
        self.book.open_account(api_key, secret, balances)

    def list_symbol(self, symbol: str) -> None:
        """Trade one more USDT pair, with the default filters."""
        if symbol not in self.book.symbols and symbol.endswith("USDT") and len(symbol) > 4:
            self.book.symbols[symbol] = SymbolInfo(symbol, symbol[:-4], "USDT")

    def trade_at(self, symbol: str, price: Decimal | str | float) -> list[Order]:
        return self.book.trade_at(symbol, Decimal(str(price)), self.now_ms())

    def follow(self, market: Any) -> None:
        """Take prices from a `FakeBinance`'s kline frames (open candles and closes): each frame
        visits its low and high in the order its body implies, then its close."""

        def on_kline(k: dict) -> None:
            if k.get("s") not in self.book.symbols:
                return
            o, h, low, c = (Decimal(k[x]) for x in ("o", "h", "l", "c"))
            path = (low, h, c) if c >= o else (h, low, c)
            for p in path:
                self.trade_at(k["s"], p)

        market.kline_listeners.append(on_kline)

    def split_next_market(self, parts: int = 2) -> None:
        self.book.fill_plans.append(FillPlan(parts=parts))

    def expire_next_market(self, fraction: Decimal | str = "0.5") -> None:
        self.book.fill_plans.append(FillPlan(fraction=Decimal(str(fraction))))

    def cancel_by_exchange(self, client_order_id: str, status: str = "CANCELED") -> Order:
        """The exchange itself ends an open order (maintenance, self-trade prevention)."""
        order = next(o for o in reversed(self.book.orders) if o.client_order_id == client_order_id and o.open)
        # An order list ends as a whole (Binance: one leg cancelled cancels the list).
        for o in [order, *self.book.siblings(order)]:
            if o.open:
                self.book.cancel(o, self.now_ms(), status)
        return order

    def orders_of(self, api_key: str, symbol: str | None = None) -> list[Order]:
        return [o for o in self.book.orders if o.account == api_key and (symbol is None or o.symbol == symbol)]

    # ---- HTTP ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        self.stats.requests[f"{request.method} {path}"] += 1
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        now = time.monotonic()
        if now < self._banned_until:
            self.stats.banned += 1
            retry = max(1, int(self._banned_until - now + 0.999))
            self._banned_until = now + self.faults.ban_seconds
            return _error(418, -1003, "Way too many requests; IP banned.", {"Retry-After": str(retry)})
        if self.faults.rate_limits:
            retry_after = self.faults.rate_limits.pop(0)
            self.stats.rate_limited += 1
            self._banned_until = now + retry_after
            return _error(429, -1003, "Too many requests; current limit is 6000 request weight per 1 MINUTE.", {"Retry-After": str(int(retry_after))})  # fmt: skip
        if self.faults.server_errors:
            self.faults.server_errors -= 1
            return _error(503, -1001, "Internal error; unable to process your request. Please try again.")
        body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        try:
            if path == "/time":
                return _json({"serverTime": self.now_ms()})
            if path == "/ping":
                return _json({})
            if path == "/exchangeInfo":
                return _json(self._exchange_info())
            account = self._authenticate(request, body)
            async with self._lock:
                answer = self._route(request.method, path, account, params)
        except ExchangeRefusal as err:
            self.stats.refusals[f"{err.code} {err.msg}"] += 1
            return _error(err.status, err.code, err.msg)
        lost = next((f for f in self.faults.lose_answer if f[0] == path and request.method == "POST"), None)
        if lost is None and request.method == "DELETE":
            lost = next((f for f in self.faults.lose_answer if f[0] == path), None)
        if lost is not None:
            self.faults.lose_answer.remove(lost)
            self.stats.answers_lost += 1
            return await self._lose(request, lost[1])
        return _json(answer, {"X-MBX-USED-WEIGHT-1M": "1"})

    async def _lose(self, request: web.Request, mode: str) -> web.StreamResponse:
        log.info("fake spot: the answer to %s %s is lost (%s)", request.method, request.path, mode)
        if mode == "drop":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never reaches the client: its connection is gone
        if mode == "late":
            await asyncio.sleep(self.faults.late_seconds)
            return _error(503, -1001, "Internal error; unable to process your request. Please try again.")
        if mode == "5xx":
            return _error(502, -1001, "Internal error; unable to process your request. Please try again.")
        return _error(503, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown.")  # fmt: skip

    def _authenticate(self, request: web.Request, body: str) -> str:
        key = request.headers.get("X-MBX-APIKEY", "")
        account = self.book.accounts.get(key)
        if account is None:
            raise ExchangeRefusal(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        payload = request.query_string + body
        unsigned, sep, signature = payload.rpartition("signature=")
        if not sep or "&" in signature:
            raise ExchangeRefusal(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        unsigned = unsigned.removesuffix("&")
        expected = hmac.new(account.secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            self.stats.signature_refusals += 1
            raise ExchangeRefusal(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(unsigned))
        try:
            timestamp = int(params["timestamp"])
            window = int(params.get("recvWindow", 5000))
        except (KeyError, ValueError):
            raise ExchangeRefusal(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.") from None  # fmt: skip
        if window > 60000:
            raise ExchangeRefusal(-1131, "recvWindow must be less than 60000")
        server = self.now_ms()
        if self.faults.reject_timestamp or timestamp > server + 1000 or server - timestamp > window:
            self.faults.reject_timestamp = max(0, self.faults.reject_timestamp - 1)
            self.stats.timestamp_refusals += 1
            raise ExchangeRefusal(-1021, "Timestamp for this request is outside of the recvWindow.")
        return key

    def _exchange_info(self) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
            "exchangeFilters": [],
            "symbols": [s.exchange_info() for s in self.book.symbols.values()],
        }

    # ---- signed endpoints -----------------------------------------------------------------
    def _route(self, method: str, path: str, key: str, p: dict[str, str]) -> Any:
        book, now_ms, account = self.book, self.now_ms(), self.book.accounts[key]
        if path == "/account" and method == "GET":
            assets = sorted(set(account.balances) | set(account.locked))
            return {
                "makerCommission": 10,
                "takerCommission": 10,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "accountType": "SPOT",
                "updateTime": now_ms,
                "balances": [
                    {"asset": a, "free": _t(account.free(a)), "locked": _t(account.locked.get(a, Decimal(0)))}
                    for a in assets
                ],
                "permissions": ["SPOT"],
                "uid": 1,
            }
        if path == "/order" and method == "POST":
            return self._place(key, p).full()
        if path == "/order" and method == "GET":
            return self._find(key, p).view()
        if path == "/order" and method == "DELETE":
            order = self._find(key, p, engine=True)
            if order.order_list_id >= 0:
                for o in [order, *book.siblings(order)]:
                    if o.open:
                        book.cancel(o, now_ms)
            else:
                book.cancel(order, now_ms)
            return order.view()
        if path == "/openOrders" and method == "GET":
            return [o.view() for o in book.open_orders(key, p.get("symbol"), time.monotonic())]
        if path == "/allOrders" and method == "GET":
            return [o.view() for o in book.all_orders(key, _need(p, "symbol"))]
        if path == "/myTrades" and method == "GET":
            trades = book.trades(key, _need(p, "symbol"))
            if "orderId" in p:
                trades = [t for t in trades if str(t.order_id) == p["orderId"]]
            return [t.my_trade() for t in sorted(trades, key=lambda t: t.id)]
        if path == "/order/cancelReplace" and method == "POST":
            return self._cancel_replace(key, p)
        if path == "/orderList/oco" and method == "POST":
            return self._oco(key, p)
        if path == "/orderList" and method == "DELETE":
            list_id = int(_need(p, "orderListId"))
            legs = [o for o in book.orders if o.account == key and o.order_list_id == list_id]
            if not legs or not any(o.open for o in legs):
                raise ExchangeRefusal(-2011, "Unknown order sent.")
            for o in legs:
                if o.open:
                    book.cancel(o, now_ms)
            return {"orderListId": list_id, "listStatusType": "ALL_DONE", "orders": [o.view() for o in legs]}
        raise ExchangeRefusal(-1, f"Not found: {method} {path}", 404)

    def _find(self, key: str, p: dict[str, str], engine: bool = False) -> Order:
        """`engine`: as the matching engine sees it (a cancel), not the lagging read side (a query)."""
        order_id = p.get("orderId")
        client_id = p.get("origClientOrderId")
        if order_id is None and client_id is None:
            raise ExchangeRefusal(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")  # fmt: skip
        return self.book.find(key, _need(p, "symbol"), int(order_id) if order_id else None, client_id, time.monotonic())

    def _place(
        self, key: str, p: dict[str, str], prefix: str = "", list_id: int = -1, shares_lock: bool = False
    ) -> Order:
        """One order from its parameters; an OCO leg's are named `<prefix>Price`, `<prefix>Type`..."""

        def name(base: str) -> str:
            return prefix + base[0].upper() + base[1:] if prefix else base

        if "quoteOrderQty" in p:
            raise ExchangeRefusal(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        return self.book.place(
            self.book.accounts[key],
            symbol=_need(p, "symbol"),
            side=_need(p, "side"),
            type=_need(p, name("type")),
            qty=_dec(_need(p, "quantity")),
            price=_dec(p[name("price")]) if p.get(name("price")) else None,
            stop_price=_dec(p[name("stopPrice")]) if p.get(name("stopPrice")) else None,
            client_id=p.get(name("clientOrderId") if prefix else "newClientOrderId"),
            time_in_force=p.get(name("timeInForce")),
            now_ms=self.now_ms(),
            visible_from=time.monotonic() + self.faults.read_lag_seconds,
            order_list_id=list_id,
            shares_lock=shares_lock,
        )

    def _cancel_replace(self, key: str, p: dict[str, str]) -> dict:
        """STOP_ON_FAILURE: a failed cancel places nothing (-2022); a refused new order after a
        done cancel is a partial success (-2021, HTTP 409)."""
        book = self.book
        if p.get("cancelReplaceMode") != "STOP_ON_FAILURE":
            raise ExchangeRefusal(-1102, "cancelReplaceMode must be STOP_ON_FAILURE here.")
        try:
            old = book.find(key, _need(p, "symbol"), None, _need(p, "cancelOrigClientOrderId"), float("inf"))
            book.cancel(old, self.now_ms())
        except ExchangeRefusal:
            raise ExchangeRefusal(-2022, "Order cancel-replace failed.") from None
        try:
            new = self._place(key, p)
        except ExchangeRefusal as err:
            raise ExchangeRefusal(-2021, f"Order cancel-replace partially failed. ({err.code}: {err.msg})", 409) from None  # fmt: skip
        return {
            "cancelResult": "SUCCESS",
            "newOrderResult": "SUCCESS",
            "cancelResponse": old.view(),
            "newOrderResponse": new.full(),
        }

    def _oco(self, key: str, p: dict[str, str]) -> dict:
        """`POST /api/v3/orderList/oco`: an above leg (LIMIT_MAKER take-profit) and a below leg
        (STOP_LOSS_LIMIT) for a sell; placed together or not at all."""
        book = self.book
        if _need(p, "side") != "SELL":
            raise ExchangeRefusal(-1106, "Only SELL OCO lists are served by this exchange.")
        list_client = p.get("listClientOrderId") or book.new_client_id()
        for cid in (p.get("aboveClientOrderId"), p.get("belowClientOrderId"), list_client):
            if cid:
                book.check_client_id(key, cid)
        list_id = book.next_list_id()
        legs: list[Order] = []
        try:
            for prefix in ("above", "below"):
                leg = {k: v for k, v in p.items() if k.startswith(prefix) or k in ("symbol", "side", "quantity")}
                legs.append(self._place(key, leg, prefix, list_id, shares_lock=bool(legs)))
        except ExchangeRefusal:
            for leg_order in legs:
                book.orders.remove(leg_order)
                book.accounts[key].lock(book.info(leg_order.symbol).base, -leg_order.orig_qty)
            raise
        return {
            "orderListId": list_id,
            "contingencyType": "OCO",
            "listStatusType": "EXEC_STARTED",
            "listOrderStatus": "EXECUTING",
            "listClientOrderId": list_client,
            "transactionTime": self.now_ms(),
            "symbol": p["symbol"],
            "orders": [{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id} for o in legs],
            "orderReports": [o.full() for o in legs],
        }


def _need(p: dict[str, str], name: str) -> str:
    value = p.get(name)
    if not value:
        raise ExchangeRefusal(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _dec(value: str) -> Decimal:
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise ExchangeRefusal(-1100, "Illegal characters found in a parameter.") from None
    if not out.is_finite():
        raise ExchangeRefusal(-1100, "Illegal characters found in a parameter.")
    return out


def _t(value: Decimal) -> str:
    return f"{value:.8f}"


def _json(body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json", headers=headers)


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"code": code, "msg": msg}, separators=(",", ":")),
        content_type="application/json",
        headers=headers,
    )
