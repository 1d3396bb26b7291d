"""Where each symbol's replayed series sits: a plausible price level per symbol, so a BTCUSDT
replay reads like BTC and an ADA one like ADA (the recorded candles come from other instruments).

Order of preference: the symbol's own recorded candles (shipped in fakes/data, licence there),
then a small table of typical levels (not live prices), then a deterministic default derived from
the symbol's name. The label says which, so the console can tell a trader what they look at."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import Decimal

# Typical levels (USDT pairs), rounded: what a trader expects to see, not a quote.
TYPICAL_LEVELS: dict[str, str] = {
    "BTCUSDT": "43000",
    "ETHUSDT": "2300",
    "BNBUSDT": "310",
    "SOLUSDT": "100",
    "XRPUSDT": "0.6",
    "ADAUSDT": "0.5",
    "DOGEUSDT": "0.08",
    "AVAXUSDT": "35",
    "DOTUSDT": "7",
    "LINKUSDT": "15",
    "MATICUSDT": "0.8",
    "LTCUSDT": "70",
    "TRXUSDT": "0.1",
    "ATOMUSDT": "10",
    "ETHBTC": "0.053",
}


@dataclass(frozen=True)
class PriceLevel:
    price: Decimal
    source: str  # "recorded", "typical" or "default"

    def label(self, symbol: str) -> str:
        if self.source == "recorded":
            return f"{symbol}: its own recorded level {self.price} (real Binance candles, cryptofeed sample data)"
        if self.source == "typical":
            return f"{symbol}: real recorded candle shapes rescaled to a typical level ~{self.price} (not a live price)"
        return (
            f"{symbol}: real recorded candle shapes at a made-up level ~{self.price} (unknown symbol; not a live price)"
        )


def tick_size(price: Decimal) -> Decimal:
    """Decimals a quote of this size carries (about six significant digits, at least cents)."""
    if price <= 0:
        return Decimal("0.01")
    decimals = max(2, 5 - math.floor(math.log10(float(price))))
    return Decimal(1).scaleb(-decimals)


def default_level(symbol: str) -> Decimal:
    """A stable level for an unknown symbol: 0.1 .. 100, the same on every machine and run."""
    digest = int.from_bytes(hashlib.sha256(symbol.upper().encode()).digest()[:4], "big")
    exponent = -1 + 3 * digest / 0xFFFFFFFF  # 10**-1 .. 10**2
    return Decimal(f"{10**exponent:.3g}")


def price_level(symbol: str, recorded: dict[str, str] | None = None) -> PriceLevel:
    symbol = symbol.upper()
    if recorded and symbol in recorded:
        return PriceLevel(Decimal(recorded[symbol]), "recorded")
    if symbol in TYPICAL_LEVELS:
        return PriceLevel(Decimal(TYPICAL_LEVELS[symbol]), "typical")
    return PriceLevel(default_level(symbol), "default")
