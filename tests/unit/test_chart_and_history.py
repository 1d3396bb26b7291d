"""The chart and history of a signal from plain models: what a trader reads (no server)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from cli.chart_model import (
    LEVEL_GAP,
    MARK_R,
    PLOT_H,
    PLOT_W,
    ChartAnalysis,
    ChartCandle,
    ChartEvent,
    ChartLevels,
    ChartModel,
    layout,
)
from cli.chart_render import figure, standalone_html
from cli.history import excerpt, history_json, history_lines, history_text
from cli.signal_report import (
    AnalysisRow,
    FillRow,
    OrderIntentRow,
    PositionRow,
    SignalInfo,
    SignalReport,
    chart_model,
    fill_candle,
    window,
)
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


def _closed(model_name: str = "m") -> SignalReport:
    """Entered on candle 11:02-11:03 (intent 2303, filled at 2304.15 with slippage), stopped out on
    candle 11:04-11:05 at 2299; the signal row was closed later (11:07), which the chart must not use."""
    report = _report(status="closed")
    minute = timedelta(minutes=1)
    report.signal.closed_at = T0 + 7 * minute
    for a in report.analyses:
        a.model_name = model_name
    report.position = PositionRow(
        position_id="paper-x",
        mode="paper",
        side="long",
        status="closed",
        size=D("0.434"),
        entry_price=D("2304.15"),
        exit_price=D("2299.00000000"),
        close_reason="stop_loss",
        realized_pnl=D("-4.23"),
        fees_paid=D("2.00"),
        stop_loss=D("2299"),
        take_profits=[D("2349.1"), D("2395.1")],
        closed_at=T0 + 7 * minute,
    )
    report.fills = [
        _fill("open", "entry", "buy", "market", "2304.15000000", "-1.00", candle=2),
        _fill("stop", "stop_loss", "sell", "stop", "2299.00000000", "-3.23", candle=4),
    ]
    return report


def _fill(order: str, kind: str, side: str, type_: str, price: str, pnl: str, candle: int) -> FillRow:
    """A fill of 0.434 (fee 1) on the `candle`th minute after T0, read back a minute after it closed;
    its candle comes from its order's key, as the real rows' do."""
    opens = T0 + candle * timedelta(minutes=1)
    key_tail = "open" if kind == "entry" else kind
    return FillRow(
        order_id=f"paper-x:{order}",
        kind=kind,
        side=side,
        type=type_,
        price=D(price),
        quantity=D("0.434"),
        fee=D("1.00"),
        realized_pnl=D(pnl),
        created_at=opens + timedelta(minutes=1),
        candle_open_time=fill_candle(f"x:{int(opens.timestamp() * 1000)}:{key_tail}"),
    )


def _no_overlaps(model: ChartModel) -> None:
    plan = layout(model)
    boxes = [label.box for label in plan.labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    marks = [(label.x_px, label.y_px) for label in plan.labels]
    for box in boxes:
        assert 0 <= box[0] and box[2] <= PLOT_W and 0 <= box[1] and box[3] <= PLOT_H, box
        for x, y in marks:  # no label covers a mark
            assert not (box[0] < x + MARK_R and x - MARK_R < box[2] and box[1] < y + MARK_R and y - MARK_R < box[3])
    for lower, upper in itertools.pairwise(plan.levels):
        assert upper.y_px - lower.y_px >= LEVEL_GAP


def test_each_mark_sits_on_its_own_candle_at_its_real_price():
    model = chart_model(_closed())
    minute = timedelta(minutes=1)
    assert [a.label for a in model.analyses] == ["#0 wait 55%", "#1 enter_trade 78%", "#2 enter_trade 96%"]
    # A candle's analysis sits on that candle (x = its open time, where the candlestick is drawn);
    # #0 and the signal on the candle whose close is the signal's price (it closes at the signal's time).
    assert [a.at for a in model.analyses] == [T0 - minute, T0 + minute, T0 + 2 * minute]
    assert model.analyses[1].candle == "2026-11-25 11:01–11:02 UTC"
    kinds = {e.kind: e for e in model.events}
    assert (kinds["signal"].at, kinds["signal"].price) == (T0 - minute, 2300.5)
    # The entry is the fill (2304.15), not the intent's 2303, on the deciding candle.
    assert (kinds["entry"].at, kinds["entry"].price, kinds["entry"].label) == (
        T0 + 2 * minute,
        2304.15,
        "entry buy 2304.15",
    )
    # The exit is the stop's fill on the candle that reached it, not the signal row's closed_at.
    assert (kinds["exit"].at, kinds["exit"].price) == (T0 + 4 * minute, 2299.0)
    assert kinds["exit"].label == "exit 2299 (stop_loss)" and "P&L -3.23" in kinds["exit"].hover
    assert model.levels is not None and model.levels.entry == 2304.15 and model.levels.stop_loss == 2299.0
    assert "exit 2299 (stop_loss), realized P&L -4.23" in model.title and model.note is None
    _no_overlaps(model)


def test_labels_never_overlap_even_when_every_mark_crowds_one_candle():
    model = chart_model(_closed())
    # Everything on one candle at nearly one price: the signal, #0..#5 and the entry and exit fills.
    crowd = model.model_copy(deep=True)
    at = T0 + timedelta(minutes=2)
    crowd.analyses = [
        ChartAnalysis(analysis_number=n, at=at, price=2302 + n * 0.01, proxy_decision="wait", decision="continue",
                      confidence=50 + n)
        for n in range(6)
    ]  # fmt: skip
    crowd.events = [
        ChartEvent(kind="signal", at=at, price=2302.0, label="signal 2302"),
        ChartEvent(kind="entry", at=at, price=2302.02, label="entry buy 2302.02"),
        ChartEvent(kind="exit", at=at + timedelta(minutes=1), price=2302.01, label="exit 2302.01 (close_action)"),
    ]
    crowd.levels = ChartLevels(source="t", entry=2302.02, stop_loss=2302.0, take_profits=[2302.03, 2302.05])
    plan = layout(crowd)
    assert len(plan.labels) == 9
    # Every label is anchored at its mark's own coordinates (the arrow points there).
    assert {(lb.text, lb.price) for lb in plan.labels} >= {("entry buy 2302.02", 2302.02), ("signal 2302", 2302.0)}
    _no_overlaps(crowd)


def test_the_figure_draws_the_layout_and_says_when_decisions_are_scripted():
    model = chart_model(_closed(model_name="fake-llm-proxy"))
    assert model.note is not None and "scripted" in model.note
    fig = figure(model)
    kinds = [t.type for t in fig.data]
    assert kinds.count("candlestick") == 1
    assert next(iter(fig.data[0].x)) == T0  # candles drawn at their open time
    notes = {a.text: a for a in fig.layout.annotations}
    assert {"#0 wait 55%", "#1 enter_trade 78%", "#2 enter_trade 96%", "entry buy 2304.15"} <= set(notes)
    assert "entry 2304.15" in notes and "stop-loss 2299" in notes and "take-profit 1 2349.1" in notes
    plan = layout(model)
    for label in plan.labels:
        drawn = notes[label.text]
        assert (drawn.ax, drawn.ay) == (label.dx, label.dy)
    assert "scripted" in fig.layout.title.text
    html = standalone_html(model)
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
    assert lines[0].split()[:3] == ["#", "TIME", "(UTC)"] and "CANDLE (UTC, opens–closes)" in lines[0]
    assert "wait -> continue" in lines[1] and "signal's own price" in lines[1] and "2300.5" in lines[1]
    assert "2026-11-25 11:01–11:02" in lines[2] and "enter_trade -> continue" in lines[2] and "78" in lines[2]
    text = history_text(report)
    assert "enters at confidence >= 95" in text and "3 analyses, 2700 tokens" in text
    assert "at 2026-11-25 11:00:00 UTC, price 2300.5 (the close of candle 2026-11-25 10:59–11:00 UTC)" in text
    assert "order intent (the plan): buy at 2303, stop-loss 2256.9, take-profit 2349.1, 2395.1 (pending)" in text
    assert len(excerpt("a " * 300)) == 90 and excerpt("two\nlines") == "two lines"


def test_history_of_a_closed_position_shows_its_fills_not_a_pending_intent():
    text = history_text(_closed(model_name="fake-llm-proxy"))
    assert "(pending)" not in text and "(filled: see the position below)" in text
    assert "position paper-x (paper): long 0.434, closed" in text
    assert "entry         buy  0.434 at 2304.15 (market), candle 2026-11-25 11:02–11:03 UTC, fee 1" in text
    assert "stop_loss     sell 0.434 at 2299 (stop), candle 2026-11-25 11:04–11:05 UTC, fee 1, P&L -3.23" in text
    assert "closed 2026-11-25 11:07:00 UTC at 2299 (stop_loss): realized P&L -4.23 after fees 2" in text
    assert "NOTE: decisions scripted by the local llm-proxy stand-in" in text


def test_the_window_covers_the_monitoring_with_a_few_candles_around():
    start, end = window(_report())
    assert start == int((T0 - timedelta(minutes=5)).timestamp() * 1000)
    assert end == int((T0 + timedelta(minutes=4 + 2)).timestamp() * 1000)


def test_history_json_prints_amounts_plainly():
    doc = json.loads(history_json(_closed()))
    assert doc["position"]["exit_price"] == "2299" and doc["fills"][0]["price"] == "2304.15"
    assert doc["fills"][1]["candle_open_time"] == "2026-11-25T11:04:00Z"


def test_a_partial_exit_of_an_open_position_is_marked_as_such():
    report = _closed()
    assert report.position is not None
    report.signal.status = "in_position"
    report.position.status, report.position.exit_price, report.position.close_reason = "open", None, None
    report.fills[1].kind = "take_profit"
    model = chart_model(report)
    kinds = [e.kind for e in model.events]
    assert kinds == ["signal", "entry", "partial"] and "partial exit 2299 (take_profit)" in model.events[2].label
    assert "position open since 2304.15" in model.title
    assert "closed" not in history_text(report).split("position paper-x")[1].splitlines()[0]
