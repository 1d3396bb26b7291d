"""`signal-monitor backtest` end to end: the shipped real series (fakes/data/backtest_BTCUSDT_1m.csv)
through the real SignalMonitorWorkflow on Temporal's time-skipping server, with the project's
worker in-process, a fresh migrated database per run and a scripted llm-proxy."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from backtest.compare import differences, format_compare
from backtest.engine import run_backtest
from backtest.inputs import every_n, fetch_klines
from backtest.report import format_table, to_json
from backtest.sandbox import Sandbox, start_time_skipping
from backtest.spec import BacktestSpec, ProxyTarget, expected_analyses
from fakes.llm_proxy import Answer, FakeLlmProxy, ManageAnswer, Step
from tests.helpers.backtest import SETTINGS, sample_spec

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-backtest-test"


def by_signal(scripts: Mapping[str, Sequence[Step]]) -> Callable[[dict[str, Any]], Step]:
    """llm-proxy answers scripted per signal, the signal known by its own price (analysis #0 carries
    it; later requests carry the same signalId), then per analysis number."""
    price_of: dict[str, str] = {}

    def policy(params: dict[str, Any]) -> Step:
        if params.get("candle") is None:
            price_of[params["signalId"]] = f"{Decimal(str(params['price'])):.2f}"
        version = (params.get("strategy") or {}).get("promptVersion", "")
        steps = scripts.get(f"{version}{price_of[params['signalId']]}") or scripts[price_of[params["signalId"]]]
        return steps[min(int(params["reanalysis"]), len(steps) - 1)]

    return policy


SCRIPT = {
    # S1 00:01: wait, then enter on candle 1 (close 43157.63); candle 4's high reaches the take-profit.
    "43123.03": [Answer.wait(60), Answer.enter(85, stop_loss=43000, take_profit=[43300])],
    # S2 00:16: enter at once at the signal's price; candle 16's low reaches the stop.
    "43616.49": [Answer.enter(90, stop_loss=43560, take_profit=[44000])],
    # S3 00:31: wait; enter_trade at 65 (under the trader's 70: overruled); bad_setup on candle 32.
    "43925.31": [Answer.wait(55), Answer.enter(65), Answer.abandon(80, stop_loss=43800, take_profit=[44150])],
    # S4 00:46: wait, then enter on candle 46 (close 44339.72) with far levels: closed by duration.
    "44252.09": [Answer.wait(50), Answer.enter(75, stop_loss=40000, take_profit=[50000])],
    # Prompt version B (compare): S3 enters at 75 on candle 31 instead.
    "B43925.31": [Answer.wait(55), Answer.enter(75, stop_loss=43800, take_profit=[44150])],
}


@pytest.fixture(scope="module")
async def box(postgres_server):
    env = await start_time_skipping()
    yield Sandbox(env=env, postgres=postgres_server)
    await env.shutdown()


@pytest.fixture
async def proxy():
    async with FakeLlmProxy(api_key=KEY, default=by_signal(SCRIPT)) as p:
        # manage-position: always hold, so every exit is the position manager's own risk check or timer.
        p.manage_default = lambda _params: ManageAnswer.hold(60)
        yield p


async def test_scripted_run_makes_the_hand_computed_trades(box, proxy):
    """Hand computation. The position manager's paper rules: stake 1000, no slippage, fee 0.1 % of
    each fill's notional rounded to 8 places, quantity = 1000 / entry rounded down to 8 places,
    P&L = (exit - entry) x qty - entry fee - exit fee. manage-position always answers hold.

    S1 entry 43157.63 (candle 1's close, filled 00:02); candles 2, 3 peak at 43243.09, 43293.05
       (held: 2 manage-position calls); candle 4's high 43349.95 reaches the take-profit 43300: exit
       00:05. qty 0.02317087; gross 142.37 x qty = 3.29883676; fees 0.99999983 + 1.00329867;
       pnl +1.29553826. Calls 2 + 2.
    S2 entry 43616.49 (the signal's price, 00:16); candle 16's low 43527.95 reaches the stop 43560:
       exit 43560 at 00:17. qty 0.02292710; gross -56.49 x qty = -1.29515188; fees 0.99999963 +
       0.99870448; pnl -3.29385599. Calls 1.
    S3 not entered: enter_trade 65 < 70 is overruled (continue), then bad_setup on candle 32 with
       stop 43800 / target 44150. In its window (candles 33..40, before 00:41) no low reaches 43800
       and candle 37's high 44171.87 reaches 44150: abandoned, would have won. Calls 3.
    S4 entry 44339.72 (candle 46's close, 00:47); levels 40000/50000 never reached; candles 47..55
       held (9 calls); max_position_duration (10 min) ends at 00:57, just before candle 56's close
       arrives: closed at the last close seen, candle 55's 44494.31. qty 0.02255314; gross 154.59 x
       qty = 3.48648991; fees 0.99999991 + 1.00348640; pnl +1.48300360. Calls 2 + 9.
    Totals: 3 trades, 2 wins (0.6667), total 1.29553826 - 3.29385599 + 1.48300360 = -0.51531413;
    profit factor 2.77854186 / 3.29385599 = 0.8436; equity 1000 -> 1001.29553826 -> 998.00168227 ->
    999.48468587: max drawdown 3.29385599; holding (3 + 1 + 10 min) / 3 = 280 s; exposure 14 of
    60 minutes = 0.2333; llm calls 4 + 1 + 3 + 11 = 19; tokens 8 analyses x 1100 + 11 x 900 = 18700."""
    assert expected_analyses(sample_spec()) == 4 * (1 + 3)
    report = await run_backtest(box, sample_spec(), ProxyTarget("scripted", proxy.url, KEY))
    print(format_table(report))
    out = to_json(report)
    assert [
        (t["signal_time"], t["entry_price"], t["exit_price"], t["exit_reason"], t["pnl"]) for t in out["trades"]
    ] == [
        ("2024-01-01T00:01:00Z", "43157.63", "43300", "take_profit", "1.29553826"),
        ("2024-01-01T00:16:00Z", "43616.49", "43560", "stop_loss", "-3.29385599"),
        ("2024-01-01T00:46:00Z", "44339.72", "44494.31", "duration", "1.4830036"),
    ]
    assert [t["exit_time"] for t in out["trades"]] == [
        "2024-01-01T00:05:00Z",
        "2024-01-01T00:17:00Z",
        "2024-01-01T00:57:00Z",
    ]
    t = out["totals"]
    assert (t["trades"], t["wins"], t["win_rate"]) == (3, 2, 0.6667)
    assert (t["total_profit"], t["max_drawdown"], t["profit_factor"]) == ("-0.5153", "3.2939", 0.8436)
    assert (t["average_holding_seconds"], t["exposure"]) == (280.0, 0.2333)
    assert (t["llm_calls"], t["tokens"], t["llm_calls_per_signal"], t["llm_calls_per_trade"]) == (
        19,
        18700,
        4.75,
        6.3333,
    )
    assert (t["overruled_by_confidence"], t["abandoned"], t["abandoned_would_have_won"]) == (1, 1, 1)
    s3 = out["signals"][2]
    assert s3["status"] == "expired" and s3["would_have_won"] is True
    assert [(d["proxy_decision"], d["decision"], d["overruled_by_confidence"]) for d in s3["decisions"]] == [
        ("wait", "continue", False),
        ("enter_trade", "continue", True),
        ("bad_setup", "abandon", False),
    ]
    assert [s["llm_calls"] for s in out["signals"]] == [4, 1, 3, 11]
    # One position_management_decisions row per managed close: the holds, then the risk exit's close.
    assert [s["position_decisions"] for s in out["signals"]] == [
        {"close": 1, "hold": 2},
        {"close": 1},
        {},
        {"hold": 9},
    ]
    assert len(proxy.requests) == 19
    assert out["run"]["stopped"] is None
    assert out["run"]["trades_from"] == "PositionManagerWorkflow (paper backend)"

    # The same inputs give the same report.
    again = await run_backtest(box, sample_spec(), ProxyTarget("scripted", proxy.url, KEY))
    assert to_json(again) == out


async def test_call_cap_stops_cleanly_with_a_partial_report(box, proxy):
    """Cap 6: S1 (4 calls) and S2 (1) run; S3's first analysis is the 6th call, after which the run
    stops: S3 is cut (its monitor cancelled), S4 never starts, no call past the cap is made."""
    report = await run_backtest(box, sample_spec(max_calls=6), ProxyTarget("scripted", proxy.url, KEY))
    print(format_table(report))
    out = to_json(report)
    assert "call cap (6) reached" in out["run"]["stopped"]
    assert "STOPPED EARLY" in format_table(report)
    assert len(proxy.requests) == 6
    assert [s["status"] for s in out["signals"]] == ["closed", "closed", "cut_by_cap", "not_run"]
    assert [t["pnl"] for t in out["trades"]] == ["1.29553826", "-3.29385599"]
    assert out["totals"]["total_profit"] == "-1.9983"
    assert out["totals"]["llm_calls"] == 6
    assert out["run"]["last_close"] == "2024-01-01T00:31:00Z"


async def test_call_cap_closes_an_open_position_at_the_last_close(box, proxy):
    """Cap 3: S1's two analyses and its position's first manage-position call (candle 2) use it up.
    The position is closed at once by the position manager's `close` Update at the last close fed,
    candle 2's 43243.09 (no slippage), without a call: qty 0.02317087, gross 85.46 x qty =
    1.98018255, fees 0.99999983 + 1.00198002, pnl -0.02179730, exit reason stopped."""
    report = await run_backtest(box, sample_spec(max_calls=3), ProxyTarget("scripted", proxy.url, KEY))
    out = to_json(report)
    assert len(proxy.requests) == 3
    assert [s["status"] for s in out["signals"]] == ["closed", "not_run", "not_run", "not_run"]
    assert [(t["exit_time"], t["exit_price"], t["exit_reason"], t["pnl"]) for t in out["trades"]] == [
        ("2024-01-01T00:03:00Z", "43243.09", "stopped", "-0.0217973")
    ]


async def test_compare_shows_the_decisions_that_differ(box, proxy):
    a = await run_backtest(box, sample_spec(), ProxyTarget("A", proxy.url, KEY))
    b = await run_backtest(box, sample_spec(), ProxyTarget("B", proxy.url, KEY, strategy={"promptVersion": "B"}))
    text = format_compare(a, b)
    print(text)
    diffs = differences(a, b)
    assert [iso_min(d.signal_time_ms) for d in diffs] == ["00:31"]
    assert (diffs[0].a, diffs[0].a_end, diffs[0].b, diffs[0].b_end) == (
        "w55 w65! A80",
        "expired",
        "w55 E75",
        "closed",
    )
    assert "signals whose decisions differ: 1 of 4" in text and "signals whose trades differ: 1 of 4" in text
    assert b.totals.trades == 4 and a.totals.trades == 3


async def test_candles_fetched_from_binance_rest_run_the_same_way(box, proxy):
    """--start/--end: the closed candles of the local Binance's REST klines (30 candles of history
    the fake knows at once), then a run on them with the stand-in's default answers."""
    from fakes.binance import FakeBinance
    from fakes.binance.series import SeriesOptions
    from fakes.llm_proxy import reanalysis_policy

    async with FakeBinance(auto_series=True, series=SeriesOptions(history=30)) as fake:
        now = datetime.now(UTC)
        async with httpx.AsyncClient(base_url=fake.rest_url) as client:
            candles = await fetch_klines(client, "ETHUSDT", "1m", now - timedelta(minutes=40), now)
    assert 29 <= len(candles) <= 30  # the history, never the open candle
    assert all(b.t - a.t == 60_000 for a, b in itertools.pairwise(candles))
    proxy.default = reanalysis_policy
    report = await run_backtest(
        box,
        BacktestSpec("ETHUSDT", "1m", candles, every_n(candles, 10), SETTINGS),
        ProxyTarget("local", proxy.url, KEY),
    )
    assert [o.status for o in report.signals] == ["closed"] * 3
    assert [[d.decision for d in o.decisions] for o in report.signals] == [["continue", "continue", "enter"]] * 3
    # Held (manage-position says hold) until max_position_duration, the last one until the data ends.
    assert [t.exit_reason for o in report.signals if (t := o.trade)] == ["duration", "duration", "end_of_data"]


def iso_min(ms: int) -> str:
    from backtest.report import iso

    return (iso(ms) or "")[11:16]


@pytest.mark.skipif(
    not shutil.which("temporal-test-server", path=str(Path(sys.executable).parent)), reason="dev extras"
)
def test_readme_command_runs_on_the_shipped_data(tmp_path):
    """docs/backtest.md's command, as a user types it (its own throwaway PostgreSQL and test server)."""
    cmd = [
        str(Path(sys.executable).parent / "signal-monitor"),
        "backtest",
        "--data",
        "fakes/data/backtest_BTCUSDT_1m.csv",
        "--symbol",
        "BTCUSDT",
        "--interval",
        "1m",
        "--every",
        "10",
        "--json",
        str(tmp_path / "report.json"),
        "--chart",
        str(tmp_path / "chart.html"),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "LLM_PROXY_URL")}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "trades 6 · win rate 50.0% · total profit -4.85" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["totals"]["trades"] == 6 and report["totals"]["llm_calls"] == 36
    # The same inputs, the same report (the stand-in is deterministic).
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert "plotly" in (tmp_path / "chart.html").read_text()[:200000].lower()
    # Usage: a real proxy needs a cap.
    bad = subprocess.run(
        [*cmd[:8], "--every", "10", "--proxy", "http://127.0.0.1:9/x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--max-calls is required" in bad.stderr


async def test_gate_forwards_with_the_variant_header_and_holds_the_cap(proxy):
    """The gate between the worker and llm-proxy: the real key and a prompt-version header go to the
    proxy, the worker's throwaway key does not; past the cap nothing is forwarded (HTTP 422)."""
    from backtest.gate import CAP_ERROR_CODE, CallGate

    gate = await CallGate(proxy.url, KEY, max_calls=1, extra_headers={"x-prompt-version": "v2"}).start()
    params = {
        "signalId": "s-1",
        "symbol": "BTCUSDT",
        "price": 43123.03,
        "reanalysis": 0,
        "candle": None,
        "strategy": {},
    }
    body = {"operation": "analyze-signal", "params": params}
    try:
        async with httpx.AsyncClient() as client:
            auth = {"Authorization": f"Bearer {gate.local_key}", "x-correlation-id": "s-1:0"}
            first = await client.post(gate.url, json=body, headers=auth)
            second = await client.post(gate.url, json=body, headers=auth)
            stranger = await client.post(gate.url, json=body, headers={"Authorization": "Bearer nope"})
    finally:
        await gate.stop()
    assert first.status_code == 200 and first.json()["data"]["decision"] == "wait", first.text
    assert second.status_code == 422 and second.json()["error"]["code"] == CAP_ERROR_CODE
    assert stranger.status_code == 401
    assert len(proxy.requests) == 1
    sent = proxy.requests[0]
    assert sent.authorized and sent.headers["x-prompt-version"] == "v2" and sent.correlation_id == "s-1:0"
    assert (gate.calls, gate.refused, gate.calls_by_signal["s-1"], gate.tokens_by_signal["s-1"]) == (1, 1, 1, 1100)
    assert gate.local_key not in repr(gate) and KEY not in repr(gate)
