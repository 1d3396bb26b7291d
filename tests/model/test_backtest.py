"""`backtest --decisions model`: the shipped series through the real workflows on the time-skipping
server, decided by the `model` backend against the rule stand-in over HTTP: prompts built from the
replayed series never show a candle after the analysed close, a rerun is answered by the cache with
no call, and `--model-cutoff` splits the report."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from backtest.cutoff import format_cutoff, split
from backtest.engine import run_backtest
from backtest.model_run import ModelRun
from backtest.report import format_table, to_json
from backtest.sandbox import Sandbox, start_time_skipping
from backtest.spec import BacktestSpec, ProxyTarget
from fakes.model import STANDIN_MODEL, FakeModel
from tests.test_backtest import CANDLES, SETTINGS, SIGNALS

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
