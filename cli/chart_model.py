"""What a signal's chart shows, as plain data: the candles, each analysis, the levels and the
fills (entry, exits). Built from the database and the exchange (cli/signal_report.py) or by
anything else (a backtest), and drawn by cli/chart_render.py, which does no I/O.

Every mark sits on the candle it belongs to (x = that candle's open time, where the candlestick is
drawn) at its real price (an analysis at its candle's close, a fill at its fill price). Where the
labels go is decided here, not by plotly: `layout` places each label in pixels on a fixed-size
figure so that no two labels (and no label and a mark) overlap, and a unit test can check it."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from cli.text import plain

# The figure's fixed geometry (pixels): what the layout computes against and the renderer draws.
WIDTH, HEIGHT = 1280, 760
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 190, 110, 130
PLOT_W, PLOT_H = WIDTH - MARGIN_L - MARGIN_R, HEIGHT - MARGIN_T - MARGIN_B
CHAR_W, LINE_H, MARK_R = 7.0, 16.0, 8.0  # an estimate of 12px text's advance, a label's height, a marker's radius
LEVEL_GAP = 15.0  # the smallest vertical distance between two level labels on the right


class ChartCandle(BaseModel):
    open_time: datetime
    open: float
    high: float
    low: float
    close: float


class ChartAnalysis(BaseModel):
    analysis_number: int
    at: datetime = Field(description="the analysed candle's open time (x of its candlestick); #0: the signal's candle")
    price: float | None
    proxy_decision: str
    decision: str | None = Field(description="the monitor's: enter, continue, abandon")
    confidence: float
    candle: str = Field(default="", description="the candle in words, both ends (hover text)")

    @property
    def label(self) -> str:
        return f"#{self.analysis_number} {self.proxy_decision} {self.confidence:.0f}%"


class ChartLevels(BaseModel):
    source: str = Field(description="where they come from, e.g. 'position' or 'analysis #2 key levels'")
    entry: float | None = None
    stop_loss: float | None = None
    take_profits: list[float] = Field(default_factory=list)


class ChartEvent(BaseModel):
    kind: Literal["signal", "entry", "exit", "partial", "end"]
    at: datetime = Field(description="x: the open time of the candle it happened on")
    price: float | None
    label: str
    hover: str = ""


class ChartModel(BaseModel):
    title: str
    symbol: str
    interval: str
    candles: list[ChartCandle]
    candles_source: str
    analyses: list[ChartAnalysis]
    levels: ChartLevels | None = None
    events: list[ChartEvent] = Field(default_factory=list)
    note: str | None = Field(default=None, description="said under the title, e.g. that decisions are scripted")


class Label(BaseModel):
    """A mark's label as drawn: anchored at (at, price), its text's centre `dx`, `dy` pixels away
    (dy > 0 is downwards, as in plotly's `ay`)."""

    kind: str
    at: datetime
    price: float
    text: str
    dx: float
    dy: float
    x_px: float  # the mark's position in the plot area
    y_px: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the text in plot pixels."""
        w = CHAR_W * len(self.text) + 6
        cx, cy = self.x_px + self.dx, self.y_px + self.dy
        return cx - w / 2, cy - LINE_H / 2, cx + w / 2, cy + LINE_H / 2


class LevelLabel(BaseModel):
    text: str
    price: float
    y_px: float  # where the text is drawn (pushed apart from its neighbours)
    line_y_px: float  # where its line is


class Layout(BaseModel):
    x_range: tuple[datetime, datetime]
    y_range: tuple[float, float]
    labels: list[Label]
    levels: list[LevelLabel]


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _step(model: ChartModel) -> timedelta:
    times = sorted(c.open_time for c in model.candles)
    steps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return min(steps) if steps else timedelta(minutes=1)


def level_lines(levels: ChartLevels | None) -> list[tuple[str, float]]:
    if levels is None:
        return []
    lines = [("entry", levels.entry), ("stop-loss", levels.stop_loss)]
    many = len(levels.take_profits) > 1
    lines += [(f"take-profit {i + 1}" if many else "take-profit", tp) for i, tp in enumerate(levels.take_profits)]
    return [(name, value) for name, value in lines if value is not None]


def layout(model: ChartModel) -> Layout:
    """The axes' ranges and every label's place. Marks keep their real coordinates; a label tries
    offsets above its mark (below for fills), nearest first, and takes the first whose box clears
    every label and mark placed so far."""
    step = _step(model)
    xs = [c.open_time for c in model.candles] + [a.at for a in model.analyses] + [e.at for e in model.events]
    x0 = (min(xs) if xs else datetime.now()) - step
    x1 = (max(xs) if xs else datetime.now()) + step
    ys = [v for c in model.candles for v in (c.low, c.high)]
    ys += [a.price for a in model.analyses if a.price is not None]
    ys += [e.price for e in model.events if e.price is not None]
    ys += [v for _, v in level_lines(model.levels)]
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    span = (hi - lo) or abs(hi) * 0.01 or 1.0
    # Room above and below the prices for the labels.
    y0, y1 = lo - span * 0.28, hi + span * 0.28
    x_span = (x1 - x0).total_seconds() or 1.0

    def px(at: datetime, price: float) -> tuple[float, float]:
        return (at - x0).total_seconds() / x_span * PLOT_W, (y1 - price) / (y1 - y0) * PLOT_H

    marks: list[tuple[str, datetime, float, str, int]] = []  # kind, at, price, text, preferred direction
    for e in model.events:
        if e.price is not None:
            marks.append((e.kind, e.at, e.price, e.label, +1 if e.kind in ("entry", "exit", "partial") else -1))
    for a in model.analyses:
        if a.price is not None:
            marks.append(("analysis", a.at, a.price, a.label, -1))
    points = [px(at, price) for _, at, price, _, _ in marks]
    taken = [(x - MARK_R, y - MARK_R, x + MARK_R, y + MARK_R) for x, y in points]
    labels: list[Label] = []
    # Left to right, so labels of one candle stack in a stable order.
    for (kind, at, price, text, direction), (x, y) in sorted(zip(marks, points, strict=True), key=lambda m: m[1][0]):
        for dy, dx in _offsets(direction):
            label = Label(kind=kind, at=at, price=price, text=text, dx=dx, dy=dy, x_px=x, y_px=y)
            box = label.box
            inside = box[1] >= 0 and box[3] <= PLOT_H and box[0] >= 0 and box[2] <= PLOT_W
            if inside and not any(_overlap(box, t) for t in taken):
                break
        labels.append(label)
        taken.append(label.box)
    return Layout(x_range=(x0, x1), y_range=(y0, y1), labels=labels, levels=_level_labels(model, y0, y1))


def _offsets(direction: int) -> list[tuple[float, float]]:
    """(dy, dx) to try: straight above (or below) at growing distances, then the other side, then
    shifted sideways."""
    rows: list[float] = [direction * (22.0 + 19 * i) for i in range(12)] + [
        -direction * (22 + 19 * i) for i in range(12)
    ]
    return [(dy, 0.0) for dy in rows] + [(dy, dx) for dx in (-90.0, 90.0, -180.0, 180.0) for dy in rows]


def _level_labels(model: ChartModel, y0: float, y1: float) -> list[LevelLabel]:
    """The level lines' labels on the right, pushed apart where levels are close."""
    out = []
    for name, value in level_lines(model.levels):
        y = (y1 - value) / (y1 - y0) * PLOT_H
        out.append(LevelLabel(text=f"{name} {plain(value)}", price=value, y_px=y, line_y_px=y))
    out.sort(key=lambda lv: lv.line_y_px)
    for prev, cur in itertools.pairwise(out):
        cur.y_px = max(cur.y_px, prev.y_px + LEVEL_GAP)
    return out
