"""What an order did, from its fills (never from the request): executed quantity, average price,
the fee per asset, and what a buy really added to the position (a fee taken in the asset bought
shrinks it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


@dataclass(frozen=True)
class Execution:
    executed: Decimal
    average_price: Decimal
    cost: Decimal
    fees: dict[str, Decimal] = field(default_factory=dict)

    def net_base(self, base: str, side: str) -> Decimal:
        """The base asset the order moved into (buy) or out of (sell) the account, fees included."""
        fee = self.fees.get(base, ZERO)
        return self.executed - fee if side == "buy" else self.executed + fee

    def fee_in(self, quote: str, base: str) -> Decimal:
        """All fees valued in the quote asset (a base-asset fee at this order's average price)."""
        return self.fees.get(quote, ZERO) + self.fees.get(base, ZERO) * self.average_price


def aggregate(fills: list[dict[str, Any]]) -> Execution:
    """Binance fills (`price`, `qty`, `commission`, `commissionAsset`; `myTrades` rows as well)."""
    executed = cost = ZERO
    fees: dict[str, Decimal] = {}
    for f in fills:
        qty, price = Decimal(str(f["qty"])), Decimal(str(f["price"]))
        executed += qty
        cost += qty * price
        asset = f.get("commissionAsset")
        if asset:
            fees[asset] = fees.get(asset, ZERO) + Decimal(str(f.get("commission", "0")))
    average = (cost / executed) if executed else ZERO
    return Execution(executed, average.quantize(Decimal("0.00000001")), cost, fees)
