"""The `--masked` probe (issue 21): the same decisions asked with the symbol, the times and the
price level hidden — symbol `ASSET`, candles by bar index only, every price multiplied by one
factor (the series' first close becomes 100). A model that recalls a market from its training data
recognises it less easily (not never: models reconstruct masked series, see docs/model-backend.md):
comparing both runs is a probe for memorisation, not a cure. Pure: inputs in, inputs out; the
answer's levels are divided back before anything is checked against the real market."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from model_backend.indicators import Bar
from workflows.monitor.models import AnalyzeSignalInput
from workflows.position.models import ManagePositionInput

MASKED_SYMBOL = "ASSET"
_LEVEL_KEYS = ("entry", "stopLoss", "takeProfit", "support", "resistance")
_DETAIL_KEYS = ("newStopLoss", "newTakeProfit")


@dataclass(frozen=True)
class Mask:
    scale: float  # masked price = real price x scale

    @classmethod
    def for_series(cls, first_close: float) -> Mask:
        return cls(100.0 / first_close if first_close > 0 else 1.0)

    def _p(self, value: float) -> float:
        return value * self.scale

    def _s(self, text: str) -> str:
        return repr(float(text) * self.scale)

    def _d(self, value: Decimal | None) -> Decimal | None:
        return None if value is None else value * Decimal(repr(self.scale))

    def bars(self, bars: Sequence[Bar]) -> list[Bar]:
        return [Bar(b.t, self._p(b.o), self._p(b.h), self._p(b.l), self._p(b.c), b.v) for b in bars]

    def analysis_input(self, input: AnalyzeSignalInput) -> AnalyzeSignalInput:
        ctx = input.context.model_copy(
            update={
                "symbol": MASKED_SYMBOL,
                "price": self._p(input.context.price) if input.context.price is not None else None,
                "indicator_data": None,  # may hold price levels
            }
        )
        k = input.candle
        candle = k.model_copy(update={f: self._s(getattr(k, f)) for f in "ohlc"}) if k is not None else None
        return input.model_copy(update={"context": ctx, "candle": candle})

    def management_input(self, input: ManagePositionInput) -> ManagePositionInput:
        k = input.candle
        return input.model_copy(
            update={
                "context": input.context.model_copy(update={"symbol": MASKED_SYMBOL}),
                "entry_price": self._d(input.entry_price),
                "market_price": self._d(input.market_price),
                "current_pnl": self._d(input.current_pnl),
                "current_sl": self._d(input.current_sl),
                "current_tp": [self._d(t) for t in input.current_tp],
                "candle": k.model_copy(update={f: self._s(getattr(k, f)) for f in "ohlc"}),
            }
        )

    def _unscale(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._unscale(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value / self.scale
        return value

    def real_levels(self, levels: dict[str, Any]) -> dict[str, Any]:
        return {k: self._unscale(v) if k in _LEVEL_KEYS else v for k, v in levels.items()}

    def real_details(self, details: dict[str, Any]) -> dict[str, Any]:
        return {k: self._unscale(v) if k in _DETAIL_KEYS else v for k, v in details.items()}
