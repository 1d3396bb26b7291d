"""A chart model drawn with plotly: candlesticks, each analysis as a marker coloured by its
decision, the fills (entry, exits) at their prices on their candles, the stop-loss / take-profit
levels as lines, each label where cli/chart_model.layout put it (with a thin arrow to its mark).
Pure: a model in, a figure (or standalone HTML with plotly.js embedded, for offline use) out."""

from __future__ import annotations

import plotly.graph_objects as go

from cli.chart_model import HEIGHT, MARGIN_B, MARGIN_L, MARGIN_R, MARGIN_T, PLOT_H, WIDTH, ChartModel, layout

DECISION_COLOURS = {"enter_trade": "#1a9850", "wait": "#f0a30a", "bad_setup": "#d73027"}
EVENT_SYMBOLS = {"signal": "star", "entry": "triangle-up", "exit": "x", "partial": "diamond", "end": "square"}
EVENT_COLOURS = {"signal": "#6a3d9a", "entry": "#1f77b4", "exit": "#111111", "partial": "#555555", "end": "#555"}
LEVEL_STYLE = {"entry": ("#1f77b4", "dash"), "stop-loss": ("#d73027", "dot"), "take-profit": ("#1a9850", "dot")}


def figure(model: ChartModel) -> go.Figure:
    plan = layout(model)
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
    for lv in plan.levels:
        colour, dash = LEVEL_STYLE[lv.text.split(" ")[0]]
        fig.add_hline(y=lv.price, line={"color": colour, "dash": dash, "width": 1.5})
        fig.add_annotation(
            xref="paper",
            x=1.0,
            xanchor="left",
            y=lv.price,
            yshift=lv.line_y_px - lv.y_px,  # pushed apart from a close neighbour
            text=lv.text,
            showarrow=False,
            font={"color": colour},
        )
    for decision, colour in DECISION_COLOURS.items():
        points = [a for a in model.analyses if a.proxy_decision == decision and a.price is not None]
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[a.at for a in points],
                y=[a.price for a in points],
                mode="markers",
                marker={"size": 11, "color": colour, "line": {"width": 1, "color": "#222"}},
                hovertext=[f"{a.label} -> {a.decision or '?'} · candle {a.candle}" for a in points],
                hoverinfo="text+y",
                name=f"analysis: {decision}",
            )
        )
    # Fills and the signal last: on top of the analysis marks they share a candle with.
    for event in model.events:
        if event.price is None:
            fig.add_vline(x=event.at, line={"color": "#555", "dash": "dash"})
            fig.add_annotation(x=event.at, yref="paper", y=1.0, yanchor="bottom", text=event.label, showarrow=False)
            continue
        fig.add_trace(
            go.Scatter(
                x=[event.at],
                y=[event.price],
                mode="markers",
                marker={"size": 13, "symbol": EVENT_SYMBOLS[event.kind], "color": EVENT_COLOURS[event.kind]},
                hovertext=[event.hover or event.label],
                hoverinfo="text",
                name=event.kind,
            )
        )
    for label in plan.labels:
        fig.add_annotation(
            x=label.at,
            y=label.price,
            text=label.text,
            showarrow=True,
            arrowhead=0,
            arrowwidth=1,
            arrowcolor="#888",
            ax=label.dx,
            ay=label.dy,
            font={"size": 12, "color": "#222"},
            bgcolor="rgba(255,255,255,0.85)",
        )
    title = model.title + (f"<br><sup>{model.note}</sup>" if model.note else "")
    fig.update_layout(
        title=title,
        xaxis_title="time (UTC); each mark on its candle",
        yaxis_title="price",
        xaxis_rangeslider_visible=False,
        xaxis_range=list(plan.x_range),
        yaxis_range=list(plan.y_range),
        template="plotly_white",
        legend={"orientation": "h", "y": -(60 / PLOT_H), "yanchor": "top"},
        margin={"l": MARGIN_L, "r": MARGIN_R, "t": MARGIN_T, "b": MARGIN_B, "autoexpand": False},
        width=WIDTH,
        height=HEIGHT,
    )
    return fig


def standalone_html(model: ChartModel) -> str:
    """One file that opens offline: plotly.js is embedded, nothing is fetched."""
    return figure(model).to_html(include_plotlyjs=True, full_html=True)
