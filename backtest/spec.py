"""What one backtest run is given (series, signals, settings, llm-proxy) and the estimate of what
it may spend. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backtest.inputs import SignalSpec, TraderSettings
from market.candle import Candle


@dataclass(frozen=True)
class ProxyTarget:
    """Where analyses go. `headers` are added by the gate (a prompt version chosen by a header);
    `strategy` is merged into the trader's strategy JSON (one chosen by a strategy field)."""

    label: str
    url: str
    key: str = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)
    local: bool = False


@dataclass
class BacktestSpec:
    symbol: str
    interval: str
    candles: list[Candle]
    signals: list[SignalSpec]
    settings: TraderSettings
    max_calls: int | None = None


def expected_analyses(spec: BacktestSpec) -> int:
    """Upper bound of analyze-signal calls before retries: per signal, its first analysis plus one
    per close it can see (within the reanalysis limit, the monitoring window and the data)."""
    window = int(spec.settings.max_monitoring_duration.total_seconds() * 1000)
    total = 0
    for s in _runnable(spec):
        closes = sum(1 for c in spec.candles if s.time_ms <= c.T < s.time_ms + window)
        total += 1 + min(spec.settings.max_reanalyses, closes)
    return total


def expected_management(spec: BacktestSpec) -> int:
    """Upper bound of manage-position calls: one per close an entered signal's position could see
    (every signal entering at once and staying open for max_position_duration or the data)."""
    span = int(spec.settings.max_position_duration.total_seconds() * 1000)
    return sum(sum(1 for c in spec.candles if s.time_ms <= c.T < s.time_ms + span) for s in _runnable(spec))


def _runnable(spec: BacktestSpec) -> list[SignalSpec]:
    first, last = spec.candles[0].T + 1, spec.candles[-1].T + 1
    return [s for s in spec.signals if first <= s.time_ms < last]
