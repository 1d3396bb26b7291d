"""The `model` backend's activities through the real client (httpx over HTTP) against the rule
stand-in (fakes/model), in Temporal's activity environment: answers, the one re-ask, abstentions,
HTTP errors and their retry types, no look-ahead, the candle cache's single flight."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.candle_source import SingleFlightCache
from activities.model_decisions import ModelDecisions
from fakes.model import FakeModel
from model_backend.client import ModelClient, new_model_http_client
from model_backend.masking import Mask
from tests.helpers.model import STEP, analysis_input, manage_input, series
from workflows.common import names

KEY = "sk-model-test-0123456789"
BARS = series()


class Fetches:
    """The exchange as a REST klines page returns it: everything up to `cutoff` and the candle
    still open after it, plus (to prove the filter) candles that closed later."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, symbol: str, interval: str, cutoff_ms: int, n: int):
        self.calls += 1
        await asyncio.sleep(0.05)
        return BARS  # the whole series, the future included


@pytest.fixture
async def fake():
    async with FakeModel(api_key=KEY) as f:
        yield f


@pytest.fixture
async def backend(fake):
    http = new_model_http_client(5.0, 4)
    client = ModelClient(http, fake.url, KEY, structured="json_schema")
    yield ModelDecisions(client, SingleFlightCache(Fetches()), "big-model", monitoring_model="small-model")
    await http.aclose()


def _table_times(prompt: str) -> list[str]:
    return re.findall(r"^(-?\d+),(\d\d-\d\d \d\d:\d\d),", prompt, re.M)


async def test_analysis_sees_only_candles_up_to_the_analysed_close_and_decides_by_the_rule(fake, backend):
    env = ActivityEnvironment()
    first = await env.run(backend.analyze_signal, analysis_input(BARS, 150, 0))
    assert first.decision == "wait" and first.confidence == 55 and "rule, not a model" in first.reasoning
    entered = await env.run(backend.analyze_signal, analysis_input(BARS, 150, 2, at=160))
    assert entered.decision == "enter_trade" and entered.confidence == 78
    levels = entered.key_levels or {}
    ordered = [levels["stopLoss"], levels["entry"], levels["takeProfit"][0]]
    assert ordered == (sorted(ordered) if levels["side"] == "long" else sorted(ordered, reverse=True))
    assert entered.technical_indicators and entered.technical_indicators["rsi14"] is not None
    assert entered.model_name == "small-model"  # reanalyses use the monitoring model
    first_req, second_req = fake.requests
    assert first_req.body["model"] == "big-model" and first_req.authorization == f"Bearer {KEY}"
    assert first_req.body["response_format"]["type"] == "json_schema"
    rows = _table_times(second_req.user)
    assert len(rows) == 100 and rows[-1][0] == "0"
    # analysis #2 on the close of bar 160: its table ends at that bar, never one after it
    assert "Analysed close: 2025-12-01 17:21 UTC" in second_req.user
    assert rows[-1][1] == "12-01 17:20"
    # analysis #0 (no candle): the candles that closed by the signal's time
    assert _table_times(first_req.user)[-1][1] == "12-01 17:10"
    assert "buy breakouts above the 20-candle high" in second_req.user
    assert "move since" in second_req.user and "indicator_data" in first_req.user
    assert len(second_req.prompt) < 24_000


async def test_one_reask_then_an_abstention_never_an_entry(fake, backend):
    env = ActivityEnvironment()
    fake.script("fenced")
    fixed = await env.run(backend.analyze_signal, analysis_input(BARS, 150, 2, at=160))
    assert fixed.decision == "enter_trade"
    reask = fake.requests[-1].body["messages"]
    assert reask[-2]["role"] == "assistant" and "code fence" in reask[-1]["content"]
    for faults in (("levels", "levels"), ("truncated", "schema"), ("not_json", "fenced")):
        fake.script(*faults)
        out = await env.run(backend.analyze_signal, analysis_input(BARS, 150, 2, at=160))
        assert out.decision == "wait" and out.confidence == 0, faults
        assert out.reasoning.startswith("abstained: ") and out.key_levels is None
    assert "stopLoss < entry" in out.reasoning or "code fence" in out.reasoning


async def test_management_rule_and_abstention_is_a_hold(fake, backend):
    env = ActivityEnvironment()
    held = await env.run(backend.manage_position, manage_input(BARS, 200))
    assert held.action == "hold" and held.model_name == "small-model"
    closed = await env.run(backend.manage_position, manage_input(BARS, 201, previous=2))
    assert closed.action == "close"
    user = fake.requests[-1].user
    assert "Position: long, entry" in user and "held 6 min" in user
    assert _table_times(user)[-1][1] == "12-01 18:01"  # bar 201, nothing later
    fake.script("schema", "schema")
    abstained = await env.run(backend.manage_position, manage_input(BARS, 202, previous=2))
    assert abstained.action == "hold" and abstained.confidence == 0 and "abstained" in abstained.reasoning


@pytest.mark.parametrize(
    ("fault", "kind", "non_retryable", "delay", "words"),
    [
        ("402", names.LLM_REQUEST_REJECTED, True, None, "credits exhausted"),
        ("429", names.LLM_RATE_LIMITED, False, timedelta(seconds=1), "rate limited"),
        ("503", names.LLM_SERVER_ERROR, False, timedelta(seconds=1), "HTTP 503"),
        ("500", names.LLM_SERVER_ERROR, False, None, "HTTP 500"),
        ("error_in_200", names.LLM_SERVER_ERROR, False, None, "inside a 200"),
    ],
)
async def test_http_errors_become_the_retry_policies_types(fake, backend, fault, kind, non_retryable, delay, words):
    fake.script(fault)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(backend.analyze_signal, analysis_input(BARS, 150, 0))
    err = caught.value
    assert err.type == kind and err.non_retryable is non_retryable and words in err.message
    assert err.next_retry_delay == delay and KEY not in err.message


async def test_a_refused_key_is_permanent_and_never_quoted(fake):
    http = new_model_http_client(5.0, 2)
    try:
        wrong = ModelDecisions(ModelClient(http, fake.url, KEY + "x"), SingleFlightCache(Fetches()), "m")
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(wrong.analyze_signal, analysis_input(BARS, 150, 0))
    finally:
        await http.aclose()
    assert caught.value.type == names.LLM_AUTH_ERROR and caught.value.non_retryable
    assert KEY not in caught.value.message


async def test_candles_fetched_once_per_close_however_many_ask():
    fetch = Fetches()
    cache = SingleFlightCache(fetch)
    cutoff = BARS[100][1]
    got = await asyncio.gather(*(cache.closed_candles("BTCUSDT", "1m", cutoff, 100) for _ in range(20)))
    assert fetch.calls == 1 and all(g == got[0] for g in got)
    assert got[0][-1].t == BARS[100][0].t and len(got[0]) == 100
    assert all(b.t + STEP - 1 <= cutoff for b in got[0])
    await cache.closed_candles("BTCUSDT", "1m", BARS[101][1], 100)
    assert fetch.calls == 2


async def test_the_masked_probe_hides_symbol_times_and_level_and_maps_levels_back(fake):
    http = new_model_http_client(5.0, 2)
    try:
        mask = Mask.for_series(200.0)  # as if the series began at 200: every price halved
        masked = ModelDecisions(ModelClient(http, fake.url, KEY), SingleFlightCache(Fetches()), "m", mask=mask)
        entered = await ActivityEnvironment().run(masked.analyze_signal, analysis_input(BARS, 150, 2, at=160))
        managed = await ActivityEnvironment().run(masked.manage_position, manage_input(BARS, 201, previous=2))
    finally:
        await http.aclose()
    for req in fake.requests:
        user = req.user
        assert "ASSET" in user and "BTCUSDT" not in user and "UTC" not in user and "12-01" not in user
        assert "(time hidden)" in user and "i,open,high,low,close,volume" in user
    real_close = BARS[160][0].c
    assert mask.scale == 0.5 and f"price {real_close * 0.5:.4f}" in fake.requests[0].user
    assert f"{real_close:.3f}" not in fake.requests[0].user
    levels = entered.key_levels or {}
    assert entered.decision == "enter_trade" and abs(levels["entry"] - real_close) < 0.01  # back to real prices
    assert managed.action == "close"
