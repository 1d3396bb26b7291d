"""The ends of a monitor, through a real Temporal server, PostgreSQL and llm-proxy over HTTP."""

from __future__ import annotations

import json
import uuid
from functools import partial

import pytest
from temporalio.client import WorkflowExecutionStatus

from fakes.llm_proxy import Answer, Fault
from tests.helpers.monitor import analysed, monitor_stack
from tests.helpers.support import analyses, eventually, insert_signal, kline, signal_status
from workflows.common import search_attributes as sa
from workflows.monitor.models import MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow


async def _state(handle) -> MonitorView:
    return await handle.query(SignalMonitorWorkflow.state)


async def test_wait_wait_enter_records_order_intent(client, database_url, db):
    row = await insert_signal(db, symbol="ETHUSDT", interval="5m")
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(
            row.signal_id,
            Answer.wait(55),
            Answer.wait(62),
            Answer.enter(85, entry=3000.0, stop_loss=2940.0, take_profit=[3060.0, 3120.0]),
        )
        handle = await m.start(row.signal_id)

        async def first_analysed():
            state = await _state(handle)
            assert state.analyses == 1 and not state.analysing
            return state

        state = await eventually(first_analysed)
        assert state.status == "monitoring"
        assert await signal_status(db, row.signal_id) == "monitoring"
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: analysed(handle, 2))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        result = await handle.result()

    assert result.status == "in_position"
    assert result.analyses == 3 and result.reanalyses == 2
    assert await signal_status(db, row.signal_id) == "in_position"
    rows = await analyses(db, row.signal_id)
    assert [r["decision"] for r in rows] == ["wait", "wait", "enter_trade"]
    assert [r["monitor_decision"] for r in rows] == ["continue", "continue", "enter"]
    assert [r["analysis_number"] for r in rows] == [0, 1, 2]
    assert rows[0]["candle_open_time"] is None
    assert int(rows[2]["candle_open_time"].timestamp() * 1000) == kline(row, 2)["t"]
    intents = await db.fetch("SELECT * FROM order_intents WHERE signal_id = $1", uuid.UUID(row.signal_id))
    assert len(intents) == 1
    intent = intents[0]
    assert intent["side"] == "buy" and float(intent["entry_price"]) == 3000.0
    assert float(intent["stop_loss"]) == 2940.0 and json.loads(intent["take_profits"]) == [3060.0, 3120.0]
    assert str(intent["id"]) == result.order_intent_id and intent["analysis_id"] == rows[2]["id"]

    # What llm-proxy was sent: the contract's body, candle, numbering and previous decisions.
    sent = m.proxy.requests_for(row.signal_id)
    assert [r.params["reanalysis"] for r in sent] == [0, 1, 2]
    assert sent[0].params["candle"] is None and sent[0].params["price"] == pytest.approx(43250.12)
    assert sent[2].params["candle"]["openTime"] == kline(row, 2)["t"]
    assert [d["decision"] for d in sent[2].params["previousDecisions"]] == ["wait", "wait"]
    assert sent[2].params["strategy"] == {"instructions": "buy breakouts", "modelTier": "fast"}
    assert sent[1].headers["x-trigger-source"] == "monitoring-worker"
    assert sent[1].headers["x-correlation-id"].startswith(row.signal_id)
    assert all(r.authorized for r in sent)

    desc = await handle.describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(sa.SIGNAL_SYMBOL) == "ETHUSDT" and attrs.get(sa.SIGNAL_INTERVAL) == "5m"
    assert attrs.get(sa.TRADER_ID) == row.trader_id
    assert attrs.get(sa.MONITOR_STATUS) == "in_position" and attrs.get(sa.REANALYSES) == 2


async def test_bad_setup_abandons_and_expires(client, database_url, db):
    row = await insert_signal(db)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(50), Answer.abandon(80))
        handle = await m.start(row.signal_id)
        await eventually(lambda: analysed(handle, 1))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        result = await handle.result()
    assert result.status == "expired" and "abandoned by the model" in result.reason
    assert await signal_status(db, row.signal_id) == "expired"
    assert await db.fetchval("SELECT count(*) FROM order_intents WHERE signal_id=$1", uuid.UUID(row.signal_id)) == 0


async def test_enter_below_min_confidence_continues_then_limit_expires(client, database_url, db):
    row = await insert_signal(db, max_reanalyses=2, min_confidence_to_enter=80)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.enter(75), Answer.wait(60), Answer.enter(79))
        handle = await m.start(row.signal_id)
        await eventually(lambda: analysed(handle, 1))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: analysed(handle, 2))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        result = await handle.result()
    assert result.status == "expired" and "reanalysis limit" in result.reason
    rows = await analyses(db, row.signal_id)
    assert [(r["decision"], r["monitor_decision"]) for r in rows] == [
        ("enter_trade", "continue"),
        ("wait", "continue"),
        ("enter_trade", "continue"),
    ]
    assert await signal_status(db, row.signal_id) == "expired"


async def test_five_consecutive_failed_analyses_fail_the_signal(client, database_url, db):
    row = await insert_signal(db)
    async with monitor_stack(client, database_url) as m:
        # 401 is not retried: each analysis fails at once, five of them end the monitor.
        m.proxy.script(row.signal_id, *[Fault.status(401)] * 5)
        handle = await m.start(row.signal_id)
        for n in range(1, 5):
            await eventually(partial(_expect_failures, handle, n))
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, n))
        result = await handle.result()
    assert result.status == "failed" and "5 consecutive analyses failed" in result.reason
    assert "LlmProxyAuthError" in result.reason
    assert await signal_status(db, row.signal_id) == "failed"
    assert await analyses(db, row.signal_id) == []
    assert len(m.proxy.requests_for(row.signal_id)) == 5


async def _expect_failures(handle, n: int) -> None:
    state = await _state(handle)
    assert state.consecutive_failures == n and not state.analysing, state


async def test_cancel_marks_signal_cancelled(client, database_url, db):
    row = await insert_signal(db)
    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await eventually(lambda: analysed(handle, 1))
        await handle.cancel()
        await eventually(lambda: _expect_status(handle, WorkflowExecutionStatus.CANCELED))
    assert await signal_status(db, row.signal_id) == "cancelled"


async def _expect_status(handle, status) -> None:
    assert (await handle.describe()).status == status


async def test_missing_trader_and_unknown_interval_fail_cleanly(client, database_url, db):
    orphan = await insert_signal(db, with_trader=False)
    odd = await insert_signal(db, interval="7m")
    async with monitor_stack(client, database_url) as m:
        r1 = await (await m.start(orphan.signal_id)).result()
        r2 = await (await m.start(odd.signal_id)).result()
    assert r1.status == "failed" and "trader" in r1.reason and "not found" in r1.reason
    assert r2.status == "failed" and "unknown interval '7m'" in r2.reason
    assert await signal_status(db, orphan.signal_id) == "failed"
    assert m.proxy.calls == 0


async def test_unknown_signal_fails_the_workflow(client, database_url):
    from temporalio.client import WorkflowFailureError

    async with monitor_stack(client, database_url) as m:
        handle = await m.start(str(uuid.uuid4()))
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert "not found" in str(info.value.cause)
