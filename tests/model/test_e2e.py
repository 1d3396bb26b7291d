"""A monitor and its position decided end to end by the `model` backend: real Temporal, PostgreSQL,
the local Binance's REST klines for the candles, and the rule stand-in behind the real client."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

from temporalio.api.sdk.v1 import WorkflowMetadata

from cli.history import history_text
from cli.signal_report import fetch_report
from fakes.binance.server import FakeBinance
from fakes.model import STANDIN_MODEL, FakeModel
from model_backend.prompt import PROMPT_VERSION, messages_sha256
from tests.helpers.model import STEP, k_of, market_series, seed_binance
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import position_rows, result_of, view
from tests.helpers.support import analyses, eventually, insert_signal, signal_status
from workflows.monitor.workflow import SignalMonitorWorkflow
from workflows.position.workflow import PositionManagerWorkflow

KEY = "sk-e2e-model-" + uuid.uuid4().hex


def _last_row_open(prompt: str) -> datetime:
    mm_dd, hh_mm = re.findall(r"^0,(\d\d-\d\d) (\d\d:\d\d),", prompt, re.M)[0]
    return datetime.strptime(f"{datetime.now(UTC).year}-{mm_dd} {hh_mm}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


async def test_monitor_and_position_decided_by_the_model_backend(client, database_url, db):
    start = (int((datetime.now(UTC) - timedelta(hours=3)).timestamp() * 1000) // STEP) * STEP
    bars = market_series(start, 140)
    signal_at = 125  # the signal comes with bar 125's close; 126, 127 decide; 128+ manage
    async with FakeBinance() as exchange, FakeModel(api_key=KEY, cost_per_call=0.00042) as model:
        seed_binance(exchange, "SOLUSDT", bars)  # later candles too: the prompts must not show them
        signal_time = datetime.fromtimestamp((bars[signal_at].t + STEP) / 1000, UTC)
        row = await insert_signal(db, symbol="SOLUSDT", interval="1m", price=bars[signal_at].c, timestamp=signal_time)
        async with monitor_stack(
            client, database_url, None, decisions="model", model_url=model.url, model_key=KEY, model=STANDIN_MODEL,
            binance_rest_url=exchange.rest_url,
        ) as m:  # fmt: skip
            monitor = await m.start(row.signal_id)
            await eventually(lambda: _analysed(monitor, 1))
            await monitor.signal(SignalMonitorWorkflow.candle_closed, k_of(bars[signal_at + 1], "SOLUSDT"))
            await eventually(lambda: _analysed(monitor, 2))
            await monitor.signal(SignalMonitorWorkflow.candle_closed, k_of(bars[signal_at + 2], "SOLUSDT"))
            result = await monitor.result()
            assert result.status == "in_position", result
            position = client.get_workflow_handle_for(PositionManagerWorkflow.run, f"position-{row.signal_id}")
            await eventually(lambda: _opened(position))
            for n in (3, 4, 5):
                await position.signal(PositionManagerWorkflow.candle_closed, k_of(bars[signal_at + n], "SOLUSDT"))
                if n < 5:
                    await eventually(partial(_managed, position, n - 2))
            closed = await result_of(position)
            monitor_details = await _details(monitor)
            position_details = await _details(position)
            assert not m.proxy.requests_for(row.signal_id)  # llm-proxy never asked

    assert closed.status == "closed" and "model" in closed.reason, closed
    rows = await analyses(db, row.signal_id)
    assert [(r["decision"], float(r["confidence"])) for r in rows] == [("wait", 55), ("wait", 62), ("enter_trade", 78)]
    assert all(r["model_name"] == STANDIN_MODEL and r["gemini_tokens_used"] > 500 for r in rows)
    assert rows[2]["key_levels"] and '"side": "long"' in rows[2]["key_levels"]
    for r, model_request in zip(rows, model.requests[:3], strict=True):
        assert r["model_requested"] == r["model_served"] == STANDIN_MODEL and r["prompt_version"] == PROMPT_VERSION
        assert r["prompt_sha256"] == messages_sha256(model_request.body["messages"])
        assert r["tokens_in"] > 500 and r["tokens_out"] > 10 and r["tokens_cached"] == 0
        assert r["cost_usd"] == Decimal("0.00042") and r["cost_source"] == "provider"
        assert r["model_attempts"] == 1 and r["abstained"] is False and r["model_latency_ms"] >= 0
    decisions = (await position_rows(db, row.signal_id))["decisions"]
    assert [d["action"] for d in decisions] == ["hold", "hold", "close"]
    assert all(d["cost_usd"] == Decimal("0.00042") and d["prompt_version"] == PROMPT_VERSION for d in decisions)
    assert all(d["model_served"] == STANDIN_MODEL and d["tokens_in"] > 500 for d in decisions)
    print_rows(rows, decisions)
    print(monitor_details, position_details, sep="\n")
    assert "model cost: $0.00126 over 3 analyses" in monitor_details
    assert "model cost $0.00126" in position_details
    text = history_text(await fetch_report(database_url, row.signal_id))
    print(text)
    assert "3 analyses, " in text and "cost $0.00126;" in text
    cost_line = next(line for line in text.splitlines() if line.startswith("position: 3 management decisions"))
    assert "(3 by the model)" in cost_line and "cost $0.00126" in cost_line
    assert await signal_status(db, row.signal_id) == "closed"
    # No look-ahead: each prompt's table ends at the analysed candle (#0: the signal's own).
    analysed = [bars[signal_at], bars[signal_at + 1], bars[signal_at + 2], *bars[signal_at + 3 : signal_at + 6]]
    assert len(model.requests) == 6
    for req, bar in zip(model.requests, analysed, strict=True):
        assert _last_row_open(req.user) == datetime.fromtimestamp(bar.t / 1000, UTC), req.user[-300:]
        assert len(re.findall(r"^-?\d+,\d\d-\d\d", req.user, re.M)) == 100
    print(model.requests[2].user[:1500], "...", model.requests[2].user[-180:], sep="\n")


def print_rows(rows, decisions) -> None:
    audit = ("model_requested", "model_served", "prompt_version", "prompt_sha256", "tokens_in", "tokens_out",
             "tokens_cached", "cost_usd", "cost_source", "model_latency_ms", "model_attempts", "abstained")  # fmt: skip
    for r in rows:
        print("signal_analyses", r["analysis_number"], r["decision"], float(r["confidence"]), {c: r[c] for c in audit})
    for d in decisions:
        print("position_management_decisions", d["action"], {c: d[c] for c in audit})


async def _details(handle) -> str:
    """What the Temporal UI shows as the workflow's current details."""
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return meta.current_details


async def _analysed(handle, n: int):
    state = await handle.query(SignalMonitorWorkflow.state)
    assert state.analyses == n and not state.analysing, state


async def _managed(handle, n: int):
    state = await view(handle)
    assert state.decisions >= n and state.queued == 0, state


async def _opened(handle):
    state = await view(handle)
    assert state.status == "open", state
    return state


async def test_credits_exhausted_is_not_retried_and_the_signal_says_so(client, database_url, db):
    """402 from the provider: every analysis fails at once (no retry can help), and the signal's
    reason names it when the failures end monitoring. No order from a failed analysis."""
    start = (int((datetime.now(UTC) - timedelta(hours=3)).timestamp() * 1000) // STEP) * STEP
    bars = market_series(start, 140)
    async with FakeBinance() as exchange, FakeModel(api_key=KEY) as model:
        seed_binance(exchange, "SOLUSDT", bars)
        model.script(*["402"] * 5)
        signal_time = datetime.fromtimestamp((bars[125].t + STEP) / 1000, UTC)
        row = await insert_signal(db, symbol="SOLUSDT", interval="1m", price=bars[125].c, timestamp=signal_time)
        async with monitor_stack(
            client, database_url, None, decisions="model", model_url=model.url, model_key=KEY, model=STANDIN_MODEL,
            binance_rest_url=exchange.rest_url,
        ) as m:  # fmt: skip
            monitor = await m.start(row.signal_id)
            for n in range(1, 5):
                await eventually(partial(_failed, monitor, n))
                await monitor.signal(SignalMonitorWorkflow.candle_closed, k_of(bars[125 + n], "SOLUSDT"))
            result = await monitor.result()
    assert result.status == "failed" and "credits exhausted (HTTP 402)" in result.reason, result
    assert len(model.requests) == 5  # one call per analysis: never retried
    reason = await db.fetchval("SELECT monitor_reason FROM signals WHERE id = $1", uuid.UUID(row.signal_id))
    assert "credits exhausted" in reason and KEY not in reason
    assert await db.fetchval("SELECT count(*) FROM order_intents WHERE signal_id = $1", uuid.UUID(row.signal_id)) == 0


async def _failed(handle, n: int):
    state = await handle.query(SignalMonitorWorkflow.state)
    assert state.counts.failed_analyses == n and not state.analysing, state.counts
