"""`--chart FILE`: the price chart with the signals and trades, and the equity curve below it, as a
standalone HTML page (plotly, plotly.js embedded: opens offline). Rendering only: a report and
its candles in, a figure out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from backtest.report import Report, equity_curve
from market.candle import Candle


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def figure(report: Report, candles: list[Candle]):  # -> plotly.graph_objects.Figure
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    r = report.run
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04)
    shown = [c for c in candles if c.T + 1 <= r.last_close_ms]
    fig.add_trace(
        go.Candlestick(
            x=[_dt(c.t) for c in shown],
            open=[float(c.o) for c in shown],
            high=[float(c.h) for c in shown],
            low=[float(c.l) for c in shown],
            close=[float(c.c) for c in shown],
            name=f"{r.symbol} {r.interval}",
        ),
        row=1,
        col=1,
    )

    def marks(name: str, times_ms: list[int], prices: list, marker: dict, text: list[str] | None = None) -> None:
        """Markers over the price chart at (time, price)."""
        x, y = [_dt(ms) for ms in times_ms], [float(p) for p in prices]
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", marker=marker, name=name, text=text), row=1, col=1)

    sig = [o for o in report.signals if o.status != "not_run"]
    marks(
        "signal",
        [o.signal_time_ms for o in sig],
        [o.price for o in sig],
        {"symbol": "circle-open", "size": 10, "color": "#555"},
        [f"{o.status}: {o.reason}" for o in sig],
    )
    trades = [o.trade for o in report.signals if o.trade is not None]
    entries = [t.entry_time_ms for t in trades], [t.entry_price for t in trades]
    marks("entry", *entries, {"symbol": "triangle-up", "size": 13, "color": "#1f77b4"})
    exit_colors = ["#2ca02c" if t.pnl > 0 else "#d62728" for t in trades]
    marks(
        "exit",
        [t.exit_time_ms for t in trades],
        [t.exit_price for t in trades],
        {"symbol": "x", "size": 12, "color": exit_colors},
        [f"{t.exit_reason}: {t.pnl:.2f}" for t in trades],
    )
    for t in trades:
        fig.add_shape(
            type="line",
            x0=_dt(t.entry_time_ms),
            x1=_dt(t.exit_time_ms),
            y0=float(t.entry_price),
            y1=float(t.exit_price),
            line={"color": "#2ca02c" if t.pnl > 0 else "#d62728", "dash": "dot"},
            row=1,
            col=1,
        )
    curve = [(r.first_open_ms, r.stake), *equity_curve(trades, r.stake), (r.last_close_ms, None)]
    xs, ys, level = [], [], r.stake
    for ms, equity in curve:
        level = equity if equity is not None else level
        xs.append(_dt(ms))
        ys.append(float(level))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"shape": "hv"}, name="equity"), row=2, col=1)
    totals = report.totals
    fig.update_layout(
        title=(
            f"backtest {r.symbol} {r.interval} · proxy {r.proxy} · {totals.trades} trades, "
            f"total {float(totals.total_profit):.2f}, max drawdown {float(totals.max_drawdown):.2f}"
            + (f" · STOPPED: {r.stopped}" if r.stopped else "")
            + ("<br><sup>decisions scripted by the local llm-proxy stand-in (not a model)</sup>" if r.scripted else "")
        ),
        xaxis_rangeslider_visible=False,
        height=760,
    )
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="equity", row=2, col=1)
    return fig


def write_chart(report: Report, candles: list[Candle], path: Path) -> None:
    figure(report, candles).write_html(str(path), include_plotlyjs=True, full_html=True)
