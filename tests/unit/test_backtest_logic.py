"""The backtest's pure parts: inputs, paper fills, figures, compare, proxy specs. No Temporal, no DB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import httpx
import pytest

from backtest import inputs
from backtest.command import UsageError, parse_duration, parse_proxy
from backtest.compare import differences, format_compare
from backtest.gate import tokens_of
from backtest.inputs import InputError, parse_candles, parse_signals
from backtest.report import (
    Decision,
    RunInfo,
    SignalOutcome,
    build_report,
    exposure,
    format_table,
    max_drawdown,
    to_json,
)
from backtest.spec import BacktestSpec, expected_analyses, expected_management
from backtest.trades import Trade, would_have_won
from fakes.binance.ohlcv import SAMPLE_FILE, sample_csv
from market.candle import Candle

M = 60_000


def c(i: int, o: str, h: str, l: str, cl: str) -> Candle:
    return Candle(t=i * M, T=(i + 1) * M - 1, o=D(o), h=D(h), l=D(l), c=D(cl), v=D(1))


# --- inputs ----------------------------------------------------------------------------------


def test_shipped_sample_is_what_the_generator_makes():
    assert SAMPLE_FILE.read_text() == sample_csv()
    candles = inputs.load_candles(SAMPLE_FILE, "1m")
    assert len(candles) == 60 and candles[0].t == 1_704_067_200_000 and candles[1].t - candles[0].t == M


def test_csv_and_json_rows_give_the_same_candles():
    csv_text = "open_time_ms,open,high,low,close,volume\n0,10,12,9,11,5\n60000,11,11.5,10.5,11,0\n"
    rows = json.dumps([[0, "10", "12", "9", "11", "5", 59999, "x"], [60000, "11", "11.5", "10.5", "11", "0"]])
    assert parse_candles(csv_text, "1m", "a") == parse_candles(rows, "1m", "b")
    assert parse_candles(csv_text, "1m", "a")[0].T == 59_999


@pytest.mark.parametrize(
    "text, message",
    [
        ("time,o,h,l,c,v\n0,1,1,1,1,1\n", "header"),
        ("open_time_ms,open,high,low,close,volume\n0,1,1,1,x,1\n", "not a number"),
        ("open_time_ms,open,high,low,close,volume\n0,1,1,2,1,1\n", "high/low"),
        ("open_time_ms,open,high,low,close,volume\n60000,1,1,1,1,1\n0,1,1,1,1,1\n", "not increasing"),
        ("open_time_ms,open,high,low,close,volume\n1000,1,1,1,1,1\n", "boundary"),
        ("open_time_ms,open,high,low,close,volume\n", "no candles"),
        ("[[0, 1, 1]]", "expected open_time_ms"),
    ],
)
def test_bad_candle_files_say_why(text, message):
    with pytest.raises(InputError, match=message):
        parse_candles(text, "1m", "f")


def test_signals_from_a_file_a_signals_export_and_every_n():
    text = "time,price\n2024-01-01T00:05:00Z,100.5\n120000,\n"
    assert parse_signals(text, "BTCUSDT", "1m", "f") == [
        inputs.SignalSpec(time_ms=120_000, price=None),
        inputs.SignalSpec(time_ms=1_704_067_500_000, price=D("100.5")),
    ]
    export = json.dumps(
        [
            {
                "id": "a",
                "symbol": "BTCUSDT",
                "interval": "1m",
                "timestamp": "2024-01-01T00:01:00+00:00",
                "price_at_signal": 7,
            },
            {
                "id": "b",
                "symbol": "ETHUSDT",
                "interval": "1m",
                "timestamp": "2024-01-01T00:02:00+00:00",
                "price_at_signal": 8,
            },
            {"id": "c", "symbol": "BTCUSDT", "interval": "15m", "timestamp": "2024-01-01T00:03:00+00:00"},
        ]
    )
    assert parse_signals(export, "BTCUSDT", "1m", "f") == [inputs.SignalSpec(time_ms=1_704_067_260_000, price=D(7))]
    with pytest.raises(InputError, match="no signals"):
        parse_signals(export, "SOLUSDT", "1m", "f")
    candles = [c(i, "1", str(i + 1), "1", str(i + 1)) for i in range(5)]  # a real candle: high >= close
    assert [(s.time_ms, s.price) for s in inputs.every_n(candles, 2)] == [(M, D(1)), (3 * M, D(3))]


def test_trader_settings_from_json_and_flags():
    s = inputs.load_settings(None, {"max_reanalyses": 2, "max_monitoring_duration": timedelta(hours=1)})
    assert s.max_reanalyses == 2 and s.max_monitoring_duration == timedelta(hours=1) and s.fee_rate == D("0.001")
    assert inputs.TraderSettings.model_validate({"max_position_duration": 600}).max_position_duration == timedelta(
        minutes=10
    )
    with pytest.raises(InputError, match="max_reanalyse"):
        inputs.load_settings(None, {"max_reanalyse": 2, "max_reanalyses": None})


async def test_klines_are_fetched_page_by_page_without_the_open_candle():
    now_ms = int(datetime.now(UTC).timestamp() * 1000) // M * M
    start = now_ms - 2500 * M
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        p = request.url.params
        seen.append(int(p["startTime"]))
        first = int(p["startTime"])
        rows = [
            [t, "1", "2", "0.5", "1.5", "3", t + M - 1, "0", 1, "0", "0", "0"]
            for t in range(first, min(int(p["endTime"]) + 1, now_ms + M), M)
        ][: int(p["limit"])]
        return httpx.Response(200, json=rows)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://x") as client:
        got = await inputs.fetch_klines(
            client,
            "BTCUSDT",
            "1m",
            datetime.fromtimestamp(start / 1000, UTC),
            datetime.fromtimestamp((now_ms + M) / 1000, UTC),
        )
    assert seen == [start, start + 1000 * M, start + 2000 * M]
    assert len(got) == 2500 and got[-1].t == now_ms - M  # the still-open candle (now_ms) is left out


# --- trades ----------------------------------------------------------------------------------


def trade(entry_ms: int = M, exit_ms: int = 2 * M, pnl: str = "1") -> Trade:
    return Trade(
        signal_time_ms=0,
        side="buy",
        entry_time_ms=entry_ms,
        entry_price=D(100),
        quantity=D(10),
        exit_time_ms=exit_ms,
        exit_price=D(110),
        exit_reason="take_profit",
        fees=D("2.1"),
        pnl=D(pnl),
    )


def test_would_have_won():
    up, down = c(1, "100", "111", "99", "110"), c(1, "100", "101", "89", "90")
    assert would_have_won("buy", D(90), D(110), [up]) is True
    assert would_have_won("buy", D(90), D(110), [down, up]) is False
    assert would_have_won("buy", D(90), D(110), [c(1, "100", "111", "89", "100")]) is False  # both: the stop
    assert would_have_won("buy", D(90), D(110), []) is False
    assert would_have_won("buy", None, D(110), [up]) is None
    assert would_have_won("sell", D(110), D(90), [down]) is True


# --- figures ---------------------------------------------------------------------------------


def test_drawdown_and_exposure():
    # equity 110, 106, 103, 108, 99: the peak 110 to 99
    assert max_drawdown([D(10), D(-4), D(-3), D(5), D(-9)], D(100)) == D(11)
    assert max_drawdown([D(1), D(2)], D(100)) == 0
    # 1m..2m and 1.5m..4m: 1m..4m, the overlap counted once
    assert exposure([trade(M, 2 * M), trade(int(1.5 * M), 4 * M)], 0, 10 * M) == 0.3


def outcome(ms, status, pnl=None, decisions=(), calls=1, won=None):
    t = None
    if pnl is not None:
        t = trade(ms, ms + M, pnl).model_copy(update={"signal_time_ms": ms})
    return SignalOutcome(
        signal_time_ms=ms,
        price=D(100),
        status=status,
        reason="r",
        decisions=[
            Decision(analysis=i, candle_open_ms=None, proxy_decision=p, confidence=cf, decision=d)
            for i, (p, cf, d) in enumerate(decisions)
        ],
        llm_calls=calls,
        tokens=calls * 100,
        trade=t,
        would_have_won=won,
    )


RUN = RunInfo(
    symbol="X",
    interval="1m",
    candles=10,
    first_open_ms=0,
    last_close_ms=10 * M,
    proxy="p",
    trades_from="paper",
    stake=D(1000),
)


def test_totals():
    r = build_report(
        RUN,
        [
            outcome(0, "in_position", "30", calls=2),
            outcome(2 * M, "in_position", "-10"),
            outcome(4 * M, "in_position", "-20", calls=3),
            outcome(
                6 * M, "expired", decisions=[("enter_trade", 60, "continue"), ("bad_setup", 80, "abandon")], won=True
            ),
            outcome(8 * M, "not_run", calls=0),
        ],
    )
    t = r.totals
    assert (t.trades, t.wins, t.win_rate, t.total_profit, t.average_profit) == (3, 1, 0.3333, D(0), D(0))
    assert (t.profit_factor, t.max_drawdown, t.exposure) == (1.0, D(30), 0.3)
    assert (t.llm_calls, t.tokens, t.llm_calls_per_signal, t.llm_calls_per_trade) == (7, 700, 1.75, 2.3333)
    assert (t.overruled_by_confidence, t.abandoned, t.abandoned_would_have_won, t.signals_run) == (1, 1, 1, 4)
    out = to_json(r)
    assert set(out["trades"][0]) >= {"signal_time", "entry_price", "exit_price", "exit_reason", "pnl"}
    assert set(out["totals"]) >= {"trades", "win_rate", "total_profit", "max_drawdown", "llm_calls", "tokens"}
    assert "expired*" in format_table(r) and "w60!" in format_table(r)
    empty = build_report(RUN, [])
    assert (empty.totals.trades, empty.totals.win_rate, empty.totals.profit_factor) == (0, None, None)


def test_compare_lists_only_the_signals_that_differ():
    a = build_report(
        RUN,
        [
            outcome(0, "in_position", "5", decisions=[("enter_trade", 80, "enter")]),
            outcome(M, "expired", decisions=[("bad_setup", 70, "abandon")]),
        ],
    )
    b = build_report(
        RUN.model_copy(update={"proxy": "q", "scripted": True}),
        [
            # Another confidence, the very same trade: the decisions differ, the trades do not.
            outcome(0, "closed", "5", decisions=[("enter_trade", 85, "enter")]),
            outcome(M, "closed", "7", decisions=[("enter_trade", 90, "enter")]),
        ],
    )
    d = differences(a, b)
    assert [
        (x.signal_time_ms, x.a, x.b, x.a_end, x.b_end, x.b_pnl, x.decisions_differ, x.trades_differ) for x in d
    ] == [
        (0, "E80", "E85", "in_position", "closed", "5", True, False),
        (M, "A70", "E90", "expired", "closed", "7", True, True),
    ]
    text = format_compare(a, b)
    assert "signals whose decisions differ: 2 of 2 (1 of them with the very same trade)" in text
    assert "signals whose trades differ: 1 of 2" in text and "differ: decisions and trade" in text
    assert "B: decisions scripted: the local llm-proxy stand-in" in text and "A: decisions scripted" not in text
    assert "NOTE: decisions scripted" in format_table(b) and "NOTE" not in format_table(a)


# --- command details ---------------------------------------------------------------------------


def test_estimate_counts_what_each_signal_can_see():
    candles = [c(i, "1", "1", "1", "1") for i in range(30)]
    settings = inputs.TraderSettings(
        max_reanalyses=5, max_monitoring_duration=timedelta(minutes=3), max_position_duration=timedelta(minutes=10)
    )
    signals = [*inputs.every_n(candles, 10), inputs.SignalSpec(time_ms=0), inputs.SignalSpec(time_ms=29 * M)]
    spec = BacktestSpec("X", "1m", candles, signals, settings)
    # Signals at 1m, 11m, 21m and 29m run (0 is before the first close): each 1 + 3 closes in its
    # 3-minute window, the 29m one 1 + 1 (the data ends); positions: 10 + 10 + 9 + 1 closes.
    assert (expected_analyses(spec), expected_management(spec)) == (14, 30)


def test_proxy_specs_and_durations():
    p = parse_proxy("https://proxy.example/llm;header:x-prompt-version=v2;strategy:promptVersion=strict")
    assert (p.target, p.headers, p.strategy, p.local) == (
        "https://proxy.example/llm",
        {"x-prompt-version": "v2"},
        {"promptVersion": "strict"},
        False,
    )
    assert parse_proxy("local").local
    for bad in ("ftp://x", "local;header=x", "local;header:Authorization=Bearer k"):
        with pytest.raises(UsageError):
            parse_proxy(bad)
    assert parse_duration("90") == timedelta(seconds=90) and parse_duration("4h") == timedelta(hours=4)


def test_tokens_of_an_answer():
    assert tokens_of({"data": {"metadata": {"tokensUsed": 12}}, "usage": {"total_tokens": 99}}) == 12
    assert tokens_of({"usage": {"total_tokens": 99}}) == 99
    assert tokens_of({"data": None}) == 0 and tokens_of("x") == 0
