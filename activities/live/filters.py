"""A symbol's trading rules (Binance's PRICE_FILTER, LOT_SIZE, NOTIONAL) applied before sending:
an amount off the step or a notional under the minimum is refused here, as a result, instead of
earning a -1013 from the exchange."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any


@dataclass(frozen=True)
class SymbolRules:
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    order_types: tuple[str, ...]

    @classmethod
    def from_exchange_info(cls, info: dict[str, Any]) -> SymbolRules:
        """From one `exchangeInfo` symbol (ccxt keeps it as `market['info']`)."""
        filters = {f["filterType"]: f for f in info.get("filters", [])}
        price = filters.get("PRICE_FILTER", {})
        lot = filters.get("LOT_SIZE", {})
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        return cls(
            symbol=info["symbol"],
            base=info["baseAsset"],
            quote=info["quoteAsset"],
            tick_size=Decimal(price.get("tickSize", "0")),
            step_size=Decimal(lot.get("stepSize", "0")),
            min_qty=Decimal(lot.get("minQty", "0")),
            min_notional=Decimal(notional.get("minNotional", "0")),
            order_types=tuple(info.get("orderTypes", ())),
        )

    def floor_qty(self, qty: Decimal) -> Decimal:
        """Down to the step: never sell more than is held, never buy more than the stake."""
        if self.step_size <= 0:
            return qty
        return (qty / self.step_size).to_integral_value(ROUND_DOWN) * self.step_size

    def round_price(self, price: Decimal, up: bool) -> Decimal:
        if self.tick_size <= 0:
            return price
        rounding = ROUND_CEILING if up else ROUND_DOWN
        return ((price / self.tick_size).to_integral_value(rounding) * self.tick_size).normalize()

    def refusal(self, qty: Decimal, price: Decimal) -> str | None:
        """Why an order of `qty` at about `price` cannot be placed, or None."""
        if qty <= 0 or qty < self.min_qty:
            return f"{qty} {self.base} is below the minimum quantity {self.min_qty} of {self.symbol}"
        if qty * price < self.min_notional:
            return (
                f"{qty} {self.base} at {price} is {qty * price:f} {self.quote}, below the minimum notional "
                f"{self.min_notional} {self.quote} of {self.symbol}"
            )
        return None

    def stop_limit(self, stop: Decimal, gap_pct: Decimal) -> tuple[Decimal, Decimal]:
        """A long's protective sell: (stopPrice, limit price). The stop is rounded toward the market
        (it triggers no later than asked); the limit sits `gap_pct` percent under it so a fast
        market still fills."""
        stop_price = self.round_price(stop, up=True)
        limit = self.round_price(stop_price * (1 - gap_pct / 100), up=False)
        return stop_price, limit
