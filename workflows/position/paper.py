"""Paper execution rules (a dry run against the candle stream, like Freqtrade's dry-run).

- A market order fills at the reference price (the deciding candle's close for an entry, the
  current close for a `reduce`/`close`) moved against the trader by the slippage.
- A stop-loss fills at its level when the candle's low (long) / high (short) reaches it, or at the
  candle's open when the candle opens beyond it (a gap: the level was never tradable).
- A take-profit fills at its level when the candle's high (long) / low (short) reaches it, or at the
  open when the candle opens beyond it (a gap in the trader's favour).
- Every fill pays `fee_pct` percent of its notional. Amounts are exact decimals: prices and
  quantities are kept to 8 places (the platform's numeric(20,8)); quantities are rounded down so a
  stake is never exceeded.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.common.candles import Kline

Side = Literal["long", "short"]
PLACES = Decimal("0.00000001")
HUNDRED = Decimal(100)
DEFAULT_FEE_PCT = Decimal("0.1")
DEFAULT_SLIPPAGE_PCT = Decimal("0.05")


class PaperRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    fee_pct: Decimal = Field(default=DEFAULT_FEE_PCT, ge=0, le=10, description="fee per fill, percent of notional")
    slippage_pct: Decimal = Field(default=DEFAULT_SLIPPAGE_PCT, ge=0, le=10, description="market orders only")


class Bar(BaseModel):
    """A closed candle's prices as exact decimals."""

    model_config = ConfigDict(frozen=True)

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal

    @classmethod
    def of(cls, k: Kline) -> Bar:
        return cls(open=Decimal(k.o), high=Decimal(k.h), low=Decimal(k.l), close=Decimal(k.c))


def price(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=ROUND_HALF_EVEN)


def quantity(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=ROUND_DOWN)


def market_fill_price(reference: Decimal, side: Side, opening: bool, rules: PaperRules) -> Decimal:
    """Buying (a long's entry, a short's exit) pays more; selling receives less."""
    buying = (side == "long") == opening
    factor = HUNDRED + rules.slippage_pct if buying else HUNDRED - rules.slippage_pct
    return price(reference * factor / HUNDRED)


def size_for_stake(stake: Decimal, fill_price: Decimal) -> Decimal:
    if fill_price <= 0:
        return Decimal(0)
    return quantity(stake / fill_price)


def fee(fill_price: Decimal, qty: Decimal, rules: PaperRules) -> Decimal:
    return price(fill_price * qty * rules.fee_pct / HUNDRED)


def stop_fill_price(side: Side, stop: Decimal, bar: Bar) -> Decimal | None:
    if side == "long":
        if bar.open <= stop:
            return bar.open
        return stop if bar.low <= stop else None
    if bar.open >= stop:
        return bar.open
    return stop if bar.high >= stop else None


def target_fill_price(side: Side, target: Decimal, bar: Bar) -> Decimal | None:
    if side == "long":
        if bar.open >= target:
            return bar.open
        return target if bar.high >= target else None
    if bar.open <= target:
        return bar.open
    return target if bar.low <= target else None


def gross_pnl(side: Side, entry: Decimal, exit: Decimal, qty: Decimal) -> Decimal:
    move = exit - entry if side == "long" else entry - exit
    return price(move * qty)


def pnl_pct(side: Side, entry: Decimal, mark: Decimal) -> Decimal:
    if entry <= 0:
        return Decimal(0)
    move = mark - entry if side == "long" else entry - mark
    return (move * HUNDRED / entry).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
