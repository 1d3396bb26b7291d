"""A chart model drawn with plotly: candlesticks, each analysis as a labelled marker coloured by
its decision, the entry / stop-loss / take-profit levels as lines, and the entry and exit.
Pure: a model in, a figure (or standalone HTML with plotly.js embedded, for offline use) out."""

from __future__ import annotations

import plotly.graph_objects as go

from cli.chart_model import ChartModel

DECISION_COLOURS = {"enter_trade": "#1a9850", "wait": "#f0a30a", "bad_setup": "#d73027"}
EVENT_SYMBOLS = {"signal": "star", "entry": "triangle-up", "exit": "x", "end": "square"}
LEVEL_STYLE = {"entry": ("#1f77b4", "dash"), "stop-loss": ("#d73027", "dot"), "take-profit": ("#1a9850", "dot")}


def figure(model: ChartModel) -> go.Figure:
    fig = go.Figure()
    if model.candles:
        fig.add_trace(
            go.Candlestick(
                x=[c.open_time for c in model.candles],
                open=[c.open for c in model.candles],
                high=[c.high for c in model.candles],
                low=[c.low for c in model.candles],
                close=[c.close for c in model.candles],
                name=f"{model.symbol} {model.interval} ({model.candles_source})",
            )
        )
    if model.levels is not None:
        lv = model.levels
        lines = [("entry", lv.entry), ("stop-loss", lv.stop_loss)] + [("take-profit", tp) for tp in lv.take_profits]
        for i, (name, value) in enumerate(lines):
            if value is None:
                continue
            colour, dash = LEVEL_STYLE[name]
            suffix = f" {i - 1}" if name == "take-profit" and len(lv.take_profits) > 1 else ""
            fig.add_hline(
                y=value,
                line={"color": colour, "dash": dash, "width": 1.5},
                annotation_text=f"{name}{suffix} {value:g}",
                annotation_position="right",
                annotation_font_color=colour,
            )
    for event in model.events:
        if event.price is None:
            fig.add_vline(x=event.at, line={"color": "#555", "dash": "dash"})
            fig.add_annotation(x=event.at, yref="paper", y=1.02, text=event.label, showarrow=False)
            continue
        fig.add_trace(
            go.Scatter(
                x=[event.at],
                y=[event.price],
                mode="markers+text",
                marker={"size": 12, "symbol": EVENT_SYMBOLS[event.kind], "color": "#333"},
                text=[event.label],
                textposition="bottom center",
                name=event.kind,
            )
        )
    # Analyses last: drawn on top of the signal and entry marks they coincide with.
    for decision, colour in DECISION_COLOURS.items():
        points = [a for a in model.analyses if a.proxy_decision == decision and a.price is not None]
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[a.at for a in points],
                y=[a.price for a in points],
                mode="markers+text",
                marker={"size": 13, "color": colour, "line": {"width": 1, "color": "#222"}},
                text=[a.label for a in points],
                textposition="top center",
                hovertext=[f"{a.label} -> {a.decision or '?'}" for a in points],
                hoverinfo="text+x+y",
                name=f"analysis: {decision}",
            )
        )
    fig.update_layout(
        title=model.title,
        xaxis_title="time (UTC)",
        yaxis_title="price",
        xaxis_rangeslider_visible=False,
        template="plotly_white",
        legend={"orientation": "h", "y": -0.15},
        margin={"r": 170},
        height=720,
    )
    return fig


def standalone_html(model: ChartModel) -> str:
    """One file that opens offline: plotly.js is embedded, nothing is fetched."""
    return figure(model).to_html(include_plotlyjs=True, full_html=True)
