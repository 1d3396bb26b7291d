"""The chart and history of a signal from plain models: what a trader reads (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cli.chart_model import ChartAnalysis, ChartCandle, ChartEvent, ChartLevels, ChartModel
from cli.chart_render import figure, standalone_html
from cli.history import excerpt, history_lines, history_text
from cli.signal_report import AnalysisRow, OrderIntentRow, SignalInfo, SignalReport, chart_model, window
from market.candle import Candle

T0 = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


def _report(status: str = "in_position") -> SignalReport:
    minute = timedelta(minutes=1)
    candles = [
        Candle(
            t=int((T0 + i * minute).timestamp() * 1000),
            T=int((T0 + (i + 1) * minute).timestamp() * 1000) - 1,
            o=2300 + i,
            h=2303 + i,
            l=2298 + i,
            c=2301 + i,
            v=10,
        )
        for i in range(6)
    ]
    rows = [
        AnalysisRow(
            analysis_number=n,
            created_at=T0 + (n + 1) * minute,
            candle_open_time=None if n == 0 else T0 + n * minute,
            price=2300.5 if n == 0 else 2301 + n,
            decision=d,
            confidence=c,
            monitor_decision=m,
            reasoning=f"reasoning {n} " + "x" * 200,
            tokens=900,
            model_name="m",
            latency_ms=40,
            key_levels={"entry": 2303.0, "stopLoss": 2256.9, "takeProfit": [2349.1, 2395.1]},
        )
        for n, d, c, m in [
            (0, "wait", 55, "continue"),
            (1, "enter_trade", 78, "continue"),
            (2, "enter_trade", 96, "enter"),
        ]
    ]
    return SignalReport(
        signal=SignalInfo(
            signal_id="7d3c3c3e-0000-4000-8000-000000000001",
            symbol="ETHUSDT",
            interval="1m",
            status=status,
            monitor_reason="entered at analysis #2",
            timestamp=T0,
            price=2300.5,
            updated_at=T0 + 4 * minute,
            min_confidence_to_enter=95,
            max_reanalyses=5,
        ),
        analyses=rows,
        order_intent=OrderIntentRow(
            side="buy",
            entry_price=2303.0,
            stop_loss=2256.9,
            take_profits=[2349.1, 2395.1],
            status="pending",
            created_at=T0,
        ),
        candles=candles,
        candles_source="REST klines",
    )


def test_the_chart_model_marks_each_analysis_the_levels_and_the_entry():
    model = chart_model(_report())
    assert [a.label for a in model.analyses] == ["#0 wait 55%", "#1 enter_trade 78%", "#2 enter_trade 96%"]
    # A candle's analysis sits at that candle's close; #0 at the signal's own time and price.
    assert model.analyses[1].at == T0 + timedelta(minutes=2) and model.analyses[0].at == T0
    assert model.levels is not None and model.levels.source == "order intent"
    assert (model.levels.entry, model.levels.stop_loss, model.levels.take_profits) == (2303.0, 2256.9, [2349.1, 2395.1])
    kinds = {e.kind: e for e in model.events}
    assert kinds["entry"].price == 2303.0 and "entry (buy)" in kinds["entry"].label
    assert len(model.candles) == 6


def test_the_figure_carries_candles_marks_and_level_lines():
    fig = figure(chart_model(_report()))
    kinds = [t.type for t in fig.data]
    assert kinds.count("candlestick") == 1
    texts = [t for trace in fig.data if trace.type == "scatter" for t in (trace.text or ())]
    assert {"#0 wait 55%", "#1 enter_trade 78%", "#2 enter_trade 96%"} <= set(texts)
    notes = [a.text for a in fig.layout.annotations]
    assert "entry 2303" in notes and "stop-loss 2256.9" in notes and "take-profit 1 2349.1" in notes
    html = standalone_html(chart_model(_report()))
    assert "<script" in html and "cdn.plot.ly" not in html.split("Plotly.newPlot")[0][-2000:]


def test_an_expired_monitor_shows_its_end_and_a_model_built_by_hand_renders():
    model = chart_model(_report(status="expired"))
    assert any(e.kind == "end" and "expired" in e.label for e in model.events)
    by_hand = ChartModel(
        title="backtest",
        symbol="BTCUSDT",
        interval="15m",
        candles=[ChartCandle(open_time=T0, open=1, high=2, low=0.5, close=1.5)],
        candles_source="backtest",
        analyses=[
            ChartAnalysis(
                analysis_number=0, at=T0, price=1.5, proxy_decision="bad_setup", decision="abandon", confidence=80
            )
        ],
        levels=ChartLevels(source="test", entry=1.5),
        events=[ChartEvent(kind="exit", at=T0, price=1.2, label="exit 1.2")],
    )
    assert len(figure(by_hand).data) == 3


def test_history_lines_and_text():
    report = _report()
    lines = history_lines(report)
    assert lines[0].split()[:3] == ["#", "TIME", "(UTC)"]
    assert "wait -> continue" in lines[1] and "signal" in lines[1] and "2300.5" in lines[1]
    assert "2026-11-25 11:01" in lines[2] and "enter_trade -> continue" in lines[2] and "78" in lines[2]
    text = history_text(report)
    assert "enters at confidence >= 95" in text and "3 analyses, 2700 tokens" in text
    assert "order intent: buy at 2303, stop-loss 2256.9, take-profit 2349.1, 2395.1" in text
    assert len(excerpt("a " * 300)) == 90 and excerpt("two\nlines") == "two lines"


def test_the_window_covers_the_monitoring_with_a_few_candles_around():
    start, end = window(_report())
    assert start == int((T0 - timedelta(minutes=5)).timestamp() * 1000)
    assert end == int((T0 + timedelta(minutes=4 + 2)).timestamp() * 1000)
