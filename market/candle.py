"""A candle as Binance carries it: a `GET /api/v3/klines` row, the stream's kline object `k`, and
the Decimal candle the product computes with. Pure: no I/O.

The `k` object a workflow accepts is validated by `workflows.common.candles.Kline` (its signal payload);
this module only builds it, from a REST row or a candle, the one way everything here does."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The fields of a REST klines row, in Binance's order, by their names in `k`: open time, open,
# high, low, close, volume, close time, quote volume, trades, taker buy base and quote volumes, an
# unused field. REST has no first/last trade id (`f`, `L`).
ROW_KEYS = ("t", "o", "h", "l", "c", "v", "T", "q", "n", "V", "Q", "B")


def row_to_k(symbol: str, interval: str, row: Sequence[Any], closed: bool = True) -> dict[str, Any]:
    """A REST row as the stream's kline object `k` (values as REST gives them)."""
    f = dict(zip(ROW_KEYS, row, strict=False))
    return {
        "t": f["t"],
        "T": f["T"],
        "s": symbol,
        "i": interval,
        "o": f["o"],
        "h": f["h"],
        "l": f["l"],
        "c": f["c"],
        "v": f["v"],
        "n": f["n"],
        "x": closed,
        "q": f["q"],
        "V": f["V"],
        "Q": f["Q"],
        "B": f["B"],
    }


def k_to_row(k: dict[str, Any]) -> list[Any]:
    """The REST row of a kline object `k` (what `GET /api/v3/klines` answers for that candle)."""
    return [k[key] for key in ROW_KEYS]


class Candle(BaseModel):
    """Open, high, low, close and volume, exact (Decimal, as written on the wire), with the open and
    close times in ms (`T` = next open - 1). High and low contain open and close."""

    model_config = ConfigDict(frozen=True)

    t: int = Field(description="open time, ms")
    T: int = Field(description="close time, ms (next open - 1)")
    o: Decimal = Field(ge=0)
    h: Decimal = Field(ge=0)
    l: Decimal = Field(ge=0)
    c: Decimal = Field(ge=0)
    v: Decimal = Field(ge=0)

    @model_validator(mode="after")
    def _could_be_real(self) -> Self:
        if self.T < self.t:
            raise ValueError(f"close time {self.T} is before open time {self.t}")
        if not (self.l <= min(self.o, self.c) and self.h >= max(self.o, self.c)):
            raise ValueError("high/low do not contain open/close")
        return self

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Candle:
        """A REST klines row; ValueError when it is not one."""
        if len(row) < 7:
            raise ValueError(f"a klines row has at least 7 fields, this one {len(row)}")
        f = dict(zip(ROW_KEYS, row, strict=False))
        return cls.model_validate(
            {key: f[key] if key in ("t", "T") else str(f[key]) for key in ("t", "T", "o", "h", "l", "c", "v")}
        )

    def kline(self, symbol: str, interval: str, shift_ms: int = 0) -> dict[str, Any]:
        """Binance's kline object `k` of this (closed) candle, as the bridge forwards it."""
        return {
            "t": self.t + shift_ms,
            "T": self.T + shift_ms,
            "s": symbol,
            "i": interval,
            "o": str(self.o),
            "h": str(self.h),
            "l": str(self.l),
            "c": str(self.c),
            "v": str(self.v),
            "x": True,
        }
