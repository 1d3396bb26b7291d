"""The one place that talks to the exchange: Binance spot's signed endpoints through ccxt, and
the exactly-once rule for placing an order.

`place_once` never sends blind: it looks the client id up, sends only when absent, and when the
answer is lost (timeout, dropped connection, 5xx, -1006/-1007) looks again once the request can no
longer reach the matching engine (its timestamp + recvWindow, plus a margin): only then is "does
not exist" final. "Duplicate order sent." is adopted. A -1021 resyncs the clock and sends again
(a request refused for its timestamp never executed). Raw endpoints are used so the answers are
Binance's own shapes (status, fills, client ids)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt

from activities.live.errors import Classified, body_of, classify
from activities.live.filters import SymbolRules

MARGIN_SECONDS = 1.0


class VenueError(Exception):
    def __init__(self, classified: Classified):
        super().__init__(classified.reason)
        self.classified = classified

    @property
    def kind(self) -> str:
        return self.classified.kind


@dataclass(frozen=True)
class OrderSpec:
    client_id: str
    symbol: str  # Binance's id, e.g. BTCUSDT
    side: str  # BUY | SELL
    type: str  # MARKET | STOP_LOSS_LIMIT | LIMIT
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None

    def params(self) -> dict[str, str]:
        p = {
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "quantity": f"{self.quantity:f}",
            "newClientOrderId": self.client_id,
            "newOrderRespType": "FULL",
        }
        if self.price is not None:
            p["price"] = f"{self.price:f}"
            p["timeInForce"] = "GTC"
        if self.stop_price is not None:
            p["stopPrice"] = f"{self.stop_price:f}"
        return p


@dataclass(frozen=True)
class OcoSpec:
    """A sell OCO protecting a long: the target above (`LIMIT_MAKER`) and the stop below
    (`STOP_LOSS_LIMIT`), one quantity; when one leg fills or triggers the exchange expires the other.
    The stop leg's client id stands for the list (it is looked up, cancelled and recorded by it)."""

    stop: OrderSpec
    target: OrderSpec
    list_client_id: str

    def params(self) -> dict[str, str]:
        assert self.stop.price is not None and self.stop.stop_price is not None and self.target.price is not None
        return {
            "symbol": self.stop.symbol,
            "side": "SELL",
            "quantity": f"{self.stop.quantity:f}",
            "listClientOrderId": self.list_client_id,
            "aboveType": "LIMIT_MAKER",
            "abovePrice": f"{self.target.price:f}",
            "aboveClientOrderId": self.target.client_id,
            "belowType": "STOP_LOSS_LIMIT",
            "belowStopPrice": f"{self.stop.stop_price:f}",
            "belowPrice": f"{self.stop.price:f}",
            "belowTimeInForce": "GTC",
            "belowClientOrderId": self.stop.client_id,
            "newOrderRespType": "FULL",
        }


def _text(err: Exception) -> str:
    return str(err)


class Venue:
    """One exchange account for one activity attempt (a fresh ccxt client: no state shared
    between concurrent attempts, so each error is read from its own last answer)."""

    def __init__(
        self,
        client: ccxt.binance,
        recv_window_ms: int,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        bans: dict[str, float] | None = None,
        account: str = "",
    ):
        """`bans`: account -> wall time its `Retry-After` ends, shared by every attempt of the
        worker, so no request of that account leaves before it (a 429 ignored becomes a 418 ban)."""
        self.client = client
        self.recv_window_ms = recv_window_ms
        self._sleep = sleep
        self._bans = bans if bans is not None else {}
        self._account = account
        client.options["recvWindow"] = recv_window_ms

    @property
    def base_url(self) -> str:
        return str(self.client.urls["api"]["private"])

    async def close(self) -> None:
        await self.client.close()

    # ---- one request ---------------------------------------------------------------------
    async def call(self, fn: Callable[[dict], Awaitable[Any]], params: dict[str, Any]) -> Any:
        """One signed request; a -1021 resyncs the clock once and sends again."""
        for attempt in range(2):
            wait = self._bans.get(self._account, 0.0) - time.time()
            if wait > 0:
                raise VenueError(Classified("rate_limited", None, "waiting out Retry-After", retry_after=wait))
            # A kept client still holds its last answer: a lost one must not be read as that.
            self.client.last_json_response = None
            self.client.last_response_headers = {}
            try:
                return await fn(dict(params))
            except ccxt.BaseError as err:
                classified = self._classify(err)
                if classified.kind == "rate_limited":
                    self._bans[self._account] = time.time() + (classified.retry_after or 60.0)
                if classified.kind == "clock" and attempt == 0:
                    await self.client.load_time_difference()
                    continue
                raise VenueError(classified) from None
        raise AssertionError("unreachable")

    def _classify(self, err: ccxt.BaseError) -> Classified:
        headers = self.client.last_response_headers or {}
        body = body_of(_text(err))
        last = self.client.last_json_response
        if body is None and isinstance(last, dict) and "code" in last:
            body = last
        status = None
        for word in _text(err).split()[:4]:
            if word.isdigit() and len(word) == 3:
                status = int(word)
        if isinstance(err, ccxt.DDoSProtection) and status is None:
            status = 429
        names = " ".join(c.__name__ for c in type(err).__mro__)
        retry_after = headers.get("Retry-After") or headers.get("retry-after")
        return classify(status=status, body=body, error_name=names, text=_text(err), retry_after=retry_after)

    # ---- reads ---------------------------------------------------------------------------
    async def rules(self, symbol: str) -> SymbolRules:
        info = await self.call(self.client.publicGetExchangeInfo, {"symbol": symbol})
        found = next((s for s in info.get("symbols", []) if s.get("symbol") == symbol), None)
        if found is None:
            raise VenueError(Classified("refused", -1121, f"{symbol} is not traded on this exchange"))
        return SymbolRules.from_exchange_info(found)

    async def lookup(self, symbol: str, client_id: str) -> dict | None:
        return await self._order_call(self.client.privateGetOrder, symbol, client_id)

    async def _order_call(self, fn: Callable[[dict], Awaitable[Any]], symbol: str, client_id: str) -> dict | None:
        """One request about the order with this client id; None when the exchange does not know it."""
        try:
            return await self.call(fn, {"symbol": symbol, "origClientOrderId": client_id})
        except VenueError as err:
            if err.kind == "not_found":
                return None
            raise

    async def trades(self, symbol: str, order_id: int | str) -> list[dict]:
        rows = await self.call(self.client.privateGetMyTrades, {"symbol": symbol, "orderId": str(order_id)})
        return list(rows)

    async def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        account = await self.call(self.client.privateGetAccount, {})
        row = next((b for b in account.get("balances", []) if b.get("asset") == asset), None)
        if row is None:
            return Decimal(0), Decimal(0)
        return Decimal(row["free"]), Decimal(row["locked"])

    async def open_orders(self, symbol: str) -> list[dict]:
        return list(await self.call(self.client.privateGetOpenOrders, {"symbol": symbol}))

    # ---- writes ---------------------------------------------------------------------------
    def window_passed_at(self, sent_at: float) -> float:
        """Wall time after which a request sent at `sent_at` can no longer execute."""
        return sent_at + self.recv_window_ms / 1000 + MARGIN_SECONDS

    async def wait_window(self, sent_at: float) -> None:
        """Until a request sent at `sent_at` can no longer reach the matching engine."""
        delay = self.window_passed_at(sent_at) - time.time()
        if delay > 0:
            await self._sleep(delay)

    async def settle(self, symbol: str, client_id: str, sent_at: float) -> dict | None:
        """After an unknown outcome: wait until the request can no longer reach the matching
        engine, then look: the order, or None (final: it was never placed)."""
        await self.wait_window(sent_at)
        return await self.lookup(symbol, client_id)

    async def place_once(
        self, spec: OrderSpec, before_send: Callable[[float], Awaitable[None]], never_sent: bool = False
    ) -> dict:
        """The order with `spec.client_id`: the existing one, or a new one. `before_send(sent_at)`
        is awaited right before the request leaves (the caller records its intent there, durably).
        `never_sent`: that record proves no request with this id ever left, so there is nothing
        to look up first."""
        if not never_sent:
            existing = await self.lookup(spec.symbol, spec.client_id)
            if existing is not None:
                return existing
        sent_at = time.time()
        await before_send(sent_at)
        try:
            return await self.call(self.client.privatePostOrder, spec.params())
        except VenueError as err:
            if err.kind == "duplicate":
                # An open order has this id: ours, from an attempt whose answer was lost.
                found = await self.settle(spec.symbol, spec.client_id, time.time() - self.recv_window_ms / 1000)
                if found is not None:
                    return found
                raise
            if err.kind == "unknown":
                found = await self.settle(spec.symbol, spec.client_id, sent_at)
                if found is not None:
                    return found
                raise VenueError(
                    Classified(
                        "retry", err.classified.code, f"not placed ({err.classified.reason}); safe to send again"
                    )
                ) from None
            raise

    async def cancel(self, symbol: str, client_id: str) -> dict | None:
        """Cancel an open order; None when it is no longer open (filled, cancelled, expired)."""
        return await self._order_call(self.client.privateDeleteOrder, symbol, client_id)

    async def place_oco_once(
        self, spec: OcoSpec, before_send: Callable[[float], Awaitable[None]], never_sent: bool = False
    ) -> tuple[dict, dict]:
        """The OCO whose stop leg has `spec.stop.client_id` (found or placed), as (stop leg, target
        leg): the same rules as `place_once`, the stop leg's id standing for the list."""
        if not never_sent:
            found = await self._oco_legs(spec)
            if found is not None:
                return found
        sent_at = time.time()
        await before_send(sent_at)
        try:
            answer = await self.call(self.client.privatePostOrderListOco, spec.params())
        except VenueError as err:
            if err.kind in ("duplicate", "unknown"):
                await self.wait_window(time.time() - self.recv_window_ms / 1000 if err.kind == "duplicate" else sent_at)
                found = await self._oco_legs(spec)
                if found is not None:
                    return found
                if err.kind == "unknown":
                    raise VenueError(
                        Classified("retry", err.classified.code, f"OCO not placed ({err.classified.reason})")
                    ) from None
            raise
        reports = {str(o.get("clientOrderId")): o for o in answer.get("orderReports", [])}
        return reports[spec.stop.client_id], reports[spec.target.client_id]

    async def _oco_legs(self, spec: OcoSpec) -> tuple[dict, dict] | None:
        stop = await self.lookup(spec.stop.symbol, spec.stop.client_id)
        if stop is None:
            return None
        target = await self.lookup(spec.stop.symbol, spec.target.client_id)
        if target is None:
            # The legs are placed together: the second is only not readable yet.
            raise VenueError(Classified("unknown", None, "the OCO's target leg is not readable yet"))
        return stop, target

    async def cancel_replace(self, old_client_id: str, spec: OrderSpec) -> dict:
        params = {**spec.params(), "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": old_client_id}
        return await self.call(self.client.privatePostOrderCancelReplace, params)
