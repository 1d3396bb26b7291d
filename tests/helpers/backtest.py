"""The sample backtest: the shipped 60-candle BTCUSDT 1m series, four signals, ten-minute monitors
and positions. The backtest tests and the latency-bound bench run this same spec."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from backtest.inputs import TraderSettings, every_n, load_candles
from backtest.spec import BacktestSpec
from fakes.binance.ohlcv import SAMPLE_FILE

CANDLES = load_candles(SAMPLE_FILE, "1m")
SETTINGS = TraderSettings(
    max_reanalyses=3,
    min_confidence_to_enter=70,
    max_monitoring_duration=timedelta(minutes=10),
    paper_stake=Decimal(1000),
    fee_rate=Decimal("0.001"),
    slippage=Decimal(0),
    max_position_duration=timedelta(minutes=10),
)
SIGNALS = every_n(CANDLES, 15)  # closes of candles 0, 15, 30, 45: 00:01, 00:16, 00:31, 00:46


def sample_spec(max_calls: int | None = None) -> BacktestSpec:
    return BacktestSpec("BTCUSDT", "1m", CANDLES, SIGNALS, SETTINGS, max_calls)
