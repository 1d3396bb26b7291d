"""The fake llm-proxy, exercised through real HTTP with httpx."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from fakes.llm_proxy import (
    BAD_ANSWER_KINDS,
    REASONING_PREFIX,
    Answer,
    FakeLlmProxy,
    Fault,
    always,
    reanalysis_policy,
)

KEY = "test-secret-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
REPO = Path(__file__).resolve().parents[2]


def body(signal_id: str = "sig-1", **params):
    p = {
        "signalId": signal_id,
        "symbol": "BTCUSDT",
        "traderId": "trader-1",
        "userId": "user-1",
        "timestamp": "2023-11-14T22:28:19.999Z",
        "price": 43250.12,
        "strategy": {"name": "breakout", "min_confidence_to_enter": 70},
        "interval": "15m",
        "candle": {
            "openTime": 1700000000000,
            "closeTime": 1700000899999,
            "open": "43000",
            "high": "43300",
            "low": "42900",
            "close": "43200",
            "volume": "12.5",
        },
        "reanalysis": 0,
        "maxReanalyses": 5,
        "previousDecisions": [],
    }
    p.update(params)
    return {"operation": "analyze-signal", "params": p}


@pytest.fixture
async def proxy():
    async with FakeLlmProxy(api_key=KEY) as p:
        yield p


@pytest.fixture
async def client():
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


async def post(client, proxy, payload=None, headers=None, **kw):
    return await client.post(
        proxy.url, json=payload if payload is not None else body(), headers={**AUTH, **(headers or {})}, **kw
    )


# ---- success envelope --------------------------------------------------------------------------


def assert_envelope(doc, signal_id):
    assert doc["success"] is True
    data = doc["data"]
    assert data["signalId"] == signal_id
    assert data["decision"] in ("enter_trade", "bad_setup", "wait")
    assert isinstance(data["confidence"], int) and 0 <= data["confidence"] <= 100
    assert isinstance(data["reasoning"], str) and data["reasoning"].strip()
    kl = data["keyLevels"]
    assert set(kl) == {"entry", "stopLoss", "takeProfit", "support", "resistance"}
    assert isinstance(kl["takeProfit"], list) and isinstance(kl["support"], list)
    assert set(data["tradePlan"]) == {"setup", "execution", "invalidation", "riskReward"}
    assert isinstance(data["technicalIndicators"], dict)
    md = data["metadata"]
    assert set(md) >= {"analysisLatencyMs", "tokensUsed", "modelName", "rawAiResponse"}
    assert md["tokensUsed"] == doc["usage"]["total_tokens"] == 1100
    assert json.loads(md["rawAiResponse"])["decision"] == data["decision"]


async def test_success_envelope_and_recorded_request(proxy, client):
    prev = [{"decision": "wait", "confidence": 60, "reasoning": "r", "candleOpenTime": i} for i in range(5)]
    r = await post(
        client,
        proxy,
        body("sig-1", previousDecisions=prev),
        headers={"x-correlation-id": "sig-1:1700000000000", "x-trigger-source": "monitoring-worker"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert_envelope(doc, "sig-1")
    assert doc["data"]["metadata"]["modelName"] == "fake-llm-proxy"
    assert doc["data"]["reasoning"].startswith(REASONING_PREFIX)

    (rec,) = proxy.requests
    assert rec.authorized is True
    assert "authorization" not in rec.headers
    assert rec.correlation_id == "sig-1:1700000000000"
    assert rec.trigger_source == "monitoring-worker"
    assert rec.headers["content-type"] == "application/json"
    assert rec.signal_id == "sig-1"
    assert rec.params["candle"]["close"] == "43200"
    assert len(rec.params["previousDecisions"]) == 5
    assert rec.params["reanalysis"] == 0
    assert rec.status == 200 and rec.outcome == "answered"
    assert rec.received_at.tzinfo is not None
    assert proxy.calls == 1 and proxy.status_counts[200] == 1


async def test_scripted_answers(proxy, client):
    proxy.script(
        "sig-1",
        Answer.enter(confidence=85, entry=100.0, stop_loss=95.0, take_profit=[110.0, 120.0]),
        Answer.abandon(reasoning="volume dried up"),
        Answer.decision("continue_monitoring", confidence=40),
        Answer.wait(61, data_overrides={"extra": 1}),
    )
    d = (await post(client, proxy)).json()["data"]
    assert (d["decision"], d["confidence"]) == ("enter_trade", 85)
    assert d["keyLevels"]["entry"] == 100.0 and d["keyLevels"]["stopLoss"] == 95.0
    assert d["keyLevels"]["takeProfit"] == [110.0, 120.0]
    assert d["tradePlan"]["riskReward"] == 4.0
    d = (await post(client, proxy)).json()["data"]
    assert (d["decision"], d["reasoning"]) == ("bad_setup", "volume dried up")
    d = (await post(client, proxy)).json()["data"]
    assert d["decision"] == "continue_monitoring" and d["reasoning"].startswith(REASONING_PREFIX)
    d = (await post(client, proxy)).json()["data"]
    assert (d["decision"], d["confidence"], d["extra"]) == ("wait", 61, 1)


# ---- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": KEY},  # no scheme
        {"Authorization": f"Basic {KEY}"},
        {},
    ],
)
async def test_bad_key_is_401(proxy, client, headers):
    r = await client.post(proxy.url, json=body(), headers=headers)
    assert r.status_code == 401
    assert r.json()["success"] is False and r.json()["error"]["code"] == "UNAUTHORIZED"
    (rec,) = proxy.requests
    assert rec.authorized is False and rec.status == 401
    assert "authorization" not in rec.headers


async def test_key_never_recorded(proxy, client):
    await post(client, proxy, headers={"x-correlation-id": "c"})
    await client.post(proxy.url, json=body(), headers={"Authorization": "Bearer wrong-key-value"})
    dump = repr(proxy.requests) + repr(proxy) + json.dumps(proxy.stats())
    assert KEY not in dump and "wrong-key-value" not in dump


@pytest.mark.parametrize("missing", ["signalId", "symbol", "strategy"])
async def test_missing_required_param_is_500(proxy, client, missing):
    payload = body()
    del payload["params"][missing]
    r = await post(client, proxy, payload)
    assert r.status_code == 500
    err = r.json()
    assert err["success"] is False and err["error"]["code"] == "INTERNAL_ERROR"
    assert missing in err["error"]["message"]


async def test_bad_operation_and_bad_json_are_500(proxy, client):
    r = await post(client, proxy, {"operation": "other", "params": body()["params"]})
    assert r.status_code == 500 and r.json()["error"]["code"] == "INTERNAL_ERROR"
    r = await client.post(proxy.url, content=b"{nope", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "INTERNAL_ERROR"
    assert proxy.requests[-1].body is None and proxy.requests[-1].body_text == "{nope"
    r = await client.get(proxy.url, headers=AUTH)
    assert r.status_code == 405


# ---- faults ----------------------------------------------------------------------------------------


async def test_status_faults(proxy, client):
    proxy.script(
        None,
        Fault.status(500),
        Fault.status(429, retry_after=2),
        Fault.status(401),
        Fault.status(403),
        Fault.status(502),
        Fault.status(503),
        Fault.status(504),
        Fault.status(500, body={"success": False, "error": {"code": "DB", "message": "x"}}),
    )
    r = await post(client, proxy)
    assert r.status_code == 500
    assert r.json()["success"] is False and r.json()["error"]["code"] == "INTERNAL_ERROR"
    assert r.json()["error"]["message"]
    r = await post(client, proxy)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    r = await post(client, proxy)
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
    assert (await post(client, proxy)).status_code == 403
    for code in (502, 503, 504):
        r = await post(client, proxy)
        assert r.status_code == code
        assert not r.headers["content-type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            r.json()
    r = await post(client, proxy)
    assert r.status_code == 500 and r.json()["error"]["code"] == "DB"
    assert proxy.status_counts == {500: 2, 429: 1, 401: 1, 403: 1, 502: 1, 503: 1, 504: 1}
    # script exhausted: back to the default policy
    assert (await post(client, proxy)).status_code == 200


async def test_timeout_fault(proxy, client):
    proxy.script(None, Fault.timeout(3))
    t0 = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        await post(client, proxy, timeout=0.3)
    assert time.monotonic() - t0 < 2.5  # the client gave up, long before the fault's 3 s
    # the proxy notices the client gave up; the next call is answered normally
    r = await post(client, proxy)
    assert r.status_code == 200
    for _ in range(100):  # noticing is asynchronous: up to 10 s on a busy machine
        if proxy.requests[0].outcome == "client_gone":
            break
        await asyncio.sleep(0.1)
    assert proxy.requests[0].outcome == "client_gone" and proxy.requests[0].status is None
    assert proxy.in_flight == 0


async def test_timeout_then_answers_when_client_waits(proxy, client):
    proxy.script(None, Fault.timeout(0.3, then=Answer.enter(90)))
    t0 = time.monotonic()
    r = await post(client, proxy, timeout=3)
    assert time.monotonic() - t0 >= 0.3
    assert r.json()["data"]["decision"] == "enter_trade"
    assert r.json()["data"]["metadata"]["analysisLatencyMs"] >= 300


async def test_disconnect_fault(proxy, client):
    proxy.script(None, Fault.disconnect(), Fault.disconnect(reset=True))
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            await post(client, proxy)
    assert proxy.disconnects == 2
    assert (await post(client, proxy)).status_code == 200


async def test_truncated_and_not_json_faults(proxy, client):
    proxy.script(None, Fault.truncated(), Fault.not_json(), Fault.truncated(abort=True))
    r = await post(client, proxy)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    assert r.text.startswith('{"success": true')
    r = await post(client, proxy)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        r.json()
    with pytest.raises(httpx.TransportError):  # Content-Length promised more than was sent
        await post(client, proxy)


async def test_success_false_fault(proxy, client):
    proxy.script("sig-1", Fault.success_false())
    r = await post(client, proxy)
    assert r.status_code == 200
    assert r.json()["success"] is False and "data" not in r.json()


@pytest.mark.parametrize("kind", BAD_ANSWER_KINDS)
async def test_bad_answer_faults(proxy, client, kind):
    proxy.script(None, Fault.bad_answer(kind))
    r = await post(client, proxy)
    assert r.status_code == 200
    doc = r.json()
    assert doc["success"] is True
    data = doc.get("data")
    expected = {
        "unknown_decision": lambda: data["decision"] not in ("enter_trade", "bad_setup", "wait"),
        "missing_decision": lambda: "decision" not in data,
        "confidence_out_of_range": lambda: data["confidence"] == 150,
        "confidence_not_number": lambda: not isinstance(data["confidence"], (int, float)),
        "missing_confidence": lambda: "confidence" not in data,
        "empty_reasoning": lambda: data["reasoning"] == "",
        "missing_reasoning": lambda: "reasoning" not in data,
        "missing_data": lambda: "data" not in doc,
        "null_data": lambda: "data" in doc and data is None,
    }[kind]
    assert expected()


async def test_bad_answer_value_and_validation(proxy, client):
    proxy.script(None, Fault.bad_answer("confidence_out_of_range", value=-5))
    assert (await post(client, proxy)).json()["data"]["confidence"] == -5
    with pytest.raises(ValueError):
        Fault.bad_answer("nonsense")
    with pytest.raises(TypeError):
        proxy.script(None, {"decision": "wait"})


async def test_slow_trickle(proxy, client):
    proxy.script(None, Fault.slow_trickle(1.5, chunks=6, then=Answer.wait(66)))
    t0 = time.monotonic()
    # each read (0.25 s apart) arrives well within the per-read timeout, even on a busy machine,
    # yet the whole answer takes longer than it: only a total deadline catches this
    r = await post(client, proxy, timeout=1.0)
    assert time.monotonic() - t0 >= 1.2
    assert r.json()["data"]["confidence"] == 66


async def test_delay_options(proxy, client):
    proxy.script(
        None, Answer.delay(0.3, Answer.wait(60)), Answer.enter(80, delay=0.2), Answer.delay(0.2, Fault.status(503))
    )
    for expected_status, min_s in ((200, 0.3), (200, 0.2), (503, 0.2)):
        t0 = time.monotonic()
        r = await post(client, proxy)
        assert r.status_code == expected_status and time.monotonic() - t0 >= min_s


# ---- script ordering & default policy ------------------------------------------------------------


async def test_script_ordering_per_signal(proxy, client):
    proxy.script("a", Answer.wait(10), Answer.enter(90))
    proxy.script(None, Answer.abandon(70))
    proxy.script("b", Fault.status(500))
    assert proxy.pending() == 4 and proxy.pending("a") == 2
    seen = []
    for sid in ("a", "b", "a", "a", "b", "a"):
        r = await post(client, proxy, body(sid))
        seen.append(r.json()["data"]["decision"] if r.status_code == 200 else r.status_code)
    # a's own queue first, then the any-signal queue, then the default policy (reanalysis 0 -> wait 55)
    assert seen == ["wait", 500, "enter_trade", "bad_setup", "wait", "wait"]
    assert [r.json()["data"]["confidence"] for r in [await post(client, proxy, body("c"))]] == [55]
    assert proxy.pending() == 0
    assert [r.signal_id for r in proxy.requests_for("b")] == ["b", "b"]


async def test_default_policy_is_deterministic(proxy, client):
    answers = []
    for n in range(4):
        r = await post(client, proxy, body("sig-x", reanalysis=n))
        answers.append(r.json()["data"])
    assert [(a["decision"], a["confidence"]) for a in answers] == [
        ("wait", 55),
        ("wait", 62),
        ("enter_trade", 78),
        ("enter_trade", 78),
    ]
    assert all(a["reasoning"].startswith(REASONING_PREFIX) for a in answers)
    assert all(a["metadata"]["modelName"] == "fake-llm-proxy" for a in answers)
    kl = answers[2]["keyLevels"]
    assert kl["entry"] == 43200.0
    assert kl["stopLoss"] == pytest.approx(43200 * 0.98)
    assert kl["takeProfit"] == [pytest.approx(43200 * 1.02), pytest.approx(43200 * 1.04)]
    # same request -> same answer (apart from the measured latency)
    again = (await post(client, proxy, body("sig-x", reanalysis=2))).json()["data"]
    for d in (again, answers[2]):
        d["metadata"].pop("analysisLatencyMs")
    assert again == answers[2]
    # without a candle the price is used
    d = (await post(client, proxy, body("sig-y", reanalysis=2, candle=None, price=200))).json()["data"]
    assert d["keyLevels"]["entry"] == 200.0 and d["keyLevels"]["stopLoss"] == 196.0
    assert reanalysis_policy({"reanalysis": 1}).confidence == 62


async def test_pluggable_default(client):
    seen = []

    def policy(params):
        seen.append(params["signalId"])
        return Answer.abandon(99) if params["symbol"] == "ETHUSDT" else Fault.status(503)

    async with FakeLlmProxy(api_key=KEY, default=policy) as proxy:
        assert (await post(client, proxy, body("e", symbol="ETHUSDT"))).json()["data"]["decision"] == "bad_setup"
        assert (await post(client, proxy)).status_code == 503
    assert seen == ["e", "sig-1"]
    async with FakeLlmProxy(api_key=KEY, default=always(Fault.status(500))) as proxy:
        assert (await post(client, proxy)).status_code == 500


# ---- benchmarks support ----------------------------------------------------------------------------


async def test_max_in_flight_and_rate():
    n = 25
    async with FakeLlmProxy(api_key=KEY, answer_delay=0.3) as proxy:
        async with httpx.AsyncClient(timeout=5, limits=httpx.Limits(max_connections=n)) as client:
            t0 = time.monotonic()
            rs = await asyncio.gather(*(post(client, proxy, body(f"s{i}")) for i in range(n)))
            elapsed = time.monotonic() - t0
        assert all(r.status_code == 200 for r in rs)
        assert elapsed < 0.3 * n / 2  # they really ran concurrently (one after another: 7.5 s)
        stats = proxy.stats()
        assert stats["calls"] == stats["completed"] == n
        assert proxy.max_in_flight == n and proxy.in_flight == 0
        assert 0 < proxy.calls_per_second <= n / 0.3 + 1e-6
        assert stats["status_counts"] == {200: n}
        proxy.reset_stats()
        assert proxy.calls == 0 and proxy.max_in_flight == 0 and len(proxy.requests) == n


async def test_wait_for_requests_and_stop_with_sleeping_handler(client):
    proxy = FakeLlmProxy(api_key=KEY)
    await proxy.start()
    proxy.script(None, Fault.timeout(30))
    task = asyncio.create_task(post(client, proxy, timeout=20))
    (rec,) = await proxy.wait_for_requests(1, timeout=15)
    assert rec.signal_id == "sig-1" and proxy.in_flight == 1
    t0 = time.monotonic()
    await proxy.stop()
    assert time.monotonic() - t0 < 10  # the handler sleeping 30 s is not waited for
    with pytest.raises(httpx.TransportError):
        await task
    assert not proxy.running
    # an outage: refused while stopped, same URL again after a restart
    with pytest.raises(httpx.ConnectError):
        await post(client, proxy)
    url = proxy.url
    async with proxy:
        assert proxy.url == url
        assert (await post(client, proxy)).status_code == 200
    with pytest.raises(RuntimeError):
        FakeLlmProxy().url  # noqa: B018


async def test_standalone_cli():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.llm_proxy",
        "--port",
        "0",
        "--api-key",
        KEY,
        "--delay",
        "0.05",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/functions/v1/llm-proxy")
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.post(url, json=body(), headers=AUTH)
            assert r.status_code == 200 and r.json()["data"]["metadata"]["modelName"] == "fake-llm-proxy"
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0
        text = line + out.decode() + err.decode()
        assert '"calls": 1' in text
        assert KEY not in text
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
