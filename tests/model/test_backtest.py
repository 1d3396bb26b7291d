"""`backtest --decisions model`: the shipped series through the real workflows on the time-skipping
server, decided by the `model` backend against the rule stand-in over HTTP: prompts built from the
replayed series never show a candle after the analysed close, a rerun is answered by the cache with
no call, and `--model-cutoff` splits the report."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backtest.cutoff import format_cutoff, split
from backtest.engine import run_backtest
from backtest.model_run import ModelRun
from backtest.report import format_table, to_json
from backtest.sandbox import Sandbox, start_time_skipping
from backtest.spec import BacktestSpec, ProxyTarget
from fakes.binance.ohlcv import SAMPLE_FILE
from fakes.model import STANDIN_MODEL, FakeModel
from tests.helpers.backtest import CANDLES, SETTINGS, SIGNALS

UNUSED = ProxyTarget("unused", "http://127.0.0.1:9/unused", "unused")


@pytest.fixture(scope="module")
async def box(postgres_server):
    env = await start_time_skipping()
    yield Sandbox(env=env, postgres=postgres_server)
    await env.shutdown()


def _minutes(text: str) -> datetime:
    return datetime.strptime(f"2024-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


async def test_model_backtest_no_look_ahead_cache_and_cutoff(box, tmp_path):
    spec = BacktestSpec("BTCUSDT", "1m", CANDLES, SIGNALS, SETTINGS, max_calls=None)
    lines: list[str] = []
    async with FakeModel() as standin:
        run = ModelRun("rule", standin.url, None, STANDIN_MODEL, cache_dir=tmp_path / "cache")
        first = await run_backtest(box, spec, UNUSED, progress=lines.append, model=run)
        asked = list(standin.requests)
        second = await run_backtest(box, spec, UNUSED, progress=lines.append, model=run)
        assert len(standin.requests) == len(asked)  # the rerun made no call
    print(format_table(first))
    a, b = to_json(first), to_json(second)
    assert a["trades"] == b["trades"] and a["totals"]["trades"] >= 1
    assert a["totals"]["llm_calls"] == len(asked) > 0 and b["totals"]["llm_calls"] == 0
    assert f"model calls made {len(asked)}, answers from the cache 0" in lines[-3]
    assert f"model calls made 0, answers from the cache {len(asked)}" in lines[-1]
    series = {c.t for c in CANDLES}
    for req in asked:
        found = re.search(r"(?:Analysed|This) close: \d{4}-(\d\d-\d\d \d\d:\d\d) UTC", req.user)
        assert found, req.user[:300]
        close = _minutes(found[1])
        rows = re.findall(r"^-?\d+,(\d\d-\d\d \d\d:\d\d),", req.user, re.M)
        assert rows, req.user[-500:]
        opens = [_minutes(r) for r in rows]
        # the series' own times (not the replay's shifted ones), none opening at or after the close
        assert all(int(o.timestamp() * 1000) in series for o in opens)
        assert max(opens).timestamp() + 60 <= close.timestamp(), (rows[-1], close)
    cut = int(datetime(2024, 1, 1, 0, 30, tzinfo=UTC).timestamp() * 1000)
    after, before = split(first, cut)
    assert after.totals.signals == 2 and before.totals.signals == 2
    text = format_cutoff(first, cut)
    assert "HEADLINE after the cutoff: signals 2/2" in text and "memorizable (before the cutoff" in text


def _backtest(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(Path(sys.executable).parent / "signal-monitor"), "backtest", "--data", str(SAMPLE_FILE),
        "--symbol", "BTCUSDT", "--interval", "1m", "--every", "15", "--decisions", "model",
        "--max-reanalyses", "3", "--max-monitoring-duration", "10m", "--max-position-duration", "10m",
        "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "report.json"), *extra,
    ]  # fmt: skip
    drop = ("DATABASE_URL", "TEMPORAL_ADDRESS", "LLM_PROXY_URL", "SIGNAL_MONITOR_MODEL_URL", "SIGNAL_MONITOR_MODEL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.slow  # three backtests as subprocesses, ~45 s
@pytest.mark.skipif(
    not shutil.which("temporal-test-server", path=str(Path(sys.executable).parent)), reason="dev extras"
)
def test_the_command_compares_two_models_and_runs_the_masked_probe(tmp_path):
    """As a user types them, against the local rule stand-in: `--compare` two model ids side by side
    (the same rule answers both: no signal differs), and `--masked` beside the plain run."""
    compared = _backtest(tmp_path, "--compare", "rule-standin", "other-model")
    assert compared.returncode == 0, compared.stderr
    out = compared.stdout
    assert "A = model rule-standin" in out and "B = model other-model" in out, out
    assert "signals whose decisions differ: 0 of 4" in out
    assert "(+19 calls of unknown cost)" in out  # other-model is in no price table: unknown, not 0
    masked = _backtest(tmp_path, "--masked")
    assert masked.returncode == 0, masked.stderr
    assert "(masked)" in masked.stdout and "signals whose decisions differ:" in masked.stdout
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["a"]["totals"]["trades"] == doc["b"]["totals"]["trades"] == 3, doc.keys()
