"""What a signal's chart shows, as plain data: the candles, each analysis, the levels and the
entry/exit. Built from the database and the exchange (cli/signal_report.py) or by anything
else (a backtest), and drawn by cli/chart_render.py, which does no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ChartCandle(BaseModel):
    open_time: datetime
    open: float
    high: float
    low: float
    close: float


class ChartAnalysis(BaseModel):
    analysis_number: int
    at: datetime = Field(description="when it applies: the candle's close, or the signal's own time for #0")
    price: float | None
    proxy_decision: str
    decision: str | None = Field(description="the monitor's: enter, continue, abandon")
    confidence: float

    @property
    def label(self) -> str:
        return f"#{self.analysis_number} {self.proxy_decision} {self.confidence:.0f}%"


class ChartLevels(BaseModel):
    source: str = Field(description="where they come from, e.g. 'order intent' or 'analysis #2 key levels'")
    entry: float | None = None
    stop_loss: float | None = None
    take_profits: list[float] = Field(default_factory=list)


class ChartEvent(BaseModel):
    kind: Literal["signal", "entry", "exit", "end"]
    at: datetime
    price: float | None
    label: str


class ChartModel(BaseModel):
    title: str
    symbol: str
    interval: str
    candles: list[ChartCandle]
    candles_source: str
    analyses: list[ChartAnalysis]
    levels: ChartLevels | None = None
    events: list[ChartEvent] = Field(default_factory=list)
