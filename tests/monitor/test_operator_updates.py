"""Operators steer a running monitor with Updates; validators refuse what makes no sense and
leave nothing in history."""

from __future__ import annotations

from functools import partial

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from fakes.llm_proxy import Answer, Fault
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import analyses, async_update, eventually, insert_signal, kline, signal_status
from workflows.monitor.inputs import AbandonRequest, SetLimitRequest
from workflows.monitor.models import MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow


async def _state(handle) -> MonitorView:
    return await handle.query(SignalMonitorWorkflow.state)


async def _idle_with(handle, analysed: int, failed: int = 0) -> MonitorView:
    state = await _state(handle)
    assert state.counts.analysed == analysed and state.counts.failed_analyses == failed, state
    assert not state.analysing
    return state


async def _update_events(handle) -> int:
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes"))


async def test_abandon_with_reason_expires_the_signal(client, database_url, db):
    row = await insert_signal(db)
    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await eventually(lambda: _idle_with(handle, 1))
        for bad in ("", "   ", 42, {"why": "x"}, "x" * 501):
            with pytest.raises(WorkflowUpdateFailedError) as info:
                # By name with raw input, as an operator sends it (no AbandonRequest could hold these).
                await handle.execute_update("abandon", bad)
            assert "InvalidRequest" in repr(info.value.cause) or "reason" in str(info.value.cause)
            # A refusal is final: sending the same request again is refused again.
            assert isinstance(info.value.cause, ApplicationError) and info.value.cause.non_retryable
        assert await _update_events(handle) == 0  # rejected updates leave no trace in history
        request = AbandonRequest(reason="news: exchange halted")
        result = await handle.execute_update(async_update(SignalMonitorWorkflow.abandon), request)
        assert result.status == "expired" and result.reason == "abandoned by operator: news: exchange halted"
        assert (await handle.result()).status == "expired"
        with pytest.raises(Exception):  # noqa: B017 - an ended workflow answers with an RPC error, not an update failure
            await handle.execute_update(async_update(SignalMonitorWorkflow.abandon), "again")  # a bare reason
    assert await signal_status(db, row.signal_id) == "expired"
    reason = await db.fetchval("SELECT monitor_reason FROM signals WHERE id = $1::uuid", row.signal_id)
    assert reason == "abandoned by operator: news: exchange halted"


async def test_set_limit_validates_and_lowering_to_done_expires(client, database_url, db):
    row = await insert_signal(db, max_reanalyses=5)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, *[Answer.wait(50)] * 3)
        handle = await m.start(row.signal_id)
        await eventually(lambda: _idle_with(handle, 1))
        for n in (1, 2):
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, n))
            await eventually(partial(_idle_with, handle, n + 1))
        for bad in (1, -1, "3", 3.5, True, 10_001):
            with pytest.raises(WorkflowUpdateFailedError):
                # By name with raw input, as an operator sends it (no SetLimitRequest could hold these).
                await handle.execute_update("set_limit", bad)
        # The two plain forms operators type, `{"limit": 9}` and the bare number, as they send them.
        state = await handle.execute_update(SignalMonitorWorkflow.set_limit, {"limit": 9})
        assert state.max_reanalyses == 9
        await handle.execute_update(SignalMonitorWorkflow.set_limit, 2)
        result = await handle.result()
    assert result.status == "expired" and "reanalysis limit" in result.reason
    assert result.reanalyses == 2
    assert await signal_status(db, row.signal_id) == "expired"


async def test_raising_the_limit_lets_monitoring_go_on(client, database_url, db):
    row = await insert_signal(db, max_reanalyses=1)
    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await eventually(lambda: _idle_with(handle, 1))
        await handle.execute_update(SignalMonitorWorkflow.set_limit, SetLimitRequest(limit=3))
        for n in (1, 2):
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, n))
            await eventually(partial(_idle_with, handle, n + 1))
        # The default policy's third answer (reanalysis 2) is an enter.
        result = await handle.result()
    assert result.status == "in_position" and result.reanalyses == 2


async def test_reanalyze_retries_a_failed_analysis_and_refuses_when_nothing_is_left(client, database_url, db):
    row = await insert_signal(db, max_reanalyses=5)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(50), Fault.status(403), Answer.wait(66))
        handle = await m.start(row.signal_id)
        await eventually(lambda: _idle_with(handle, 1))
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(async_update(SignalMonitorWorkflow.reanalyze))
        assert "nothing to reanalyse" in str(info.value.cause)
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        state = await eventually(lambda: _idle_with(handle, 1, failed=1))
        assert state.failures[-1].error.startswith("LlmProxyAuthError")
        state = await handle.execute_update(async_update(SignalMonitorWorkflow.reanalyze))
        assert state.counts.analysed == 2 and state.consecutive_failures == 0
        assert state.last_decision is not None and state.last_decision.candle_open_time == kline(row, 1)["t"]
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(async_update(SignalMonitorWorkflow.reanalyze))
        # The same candle sent again is a duplicate: one row per candle.
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        state = await eventually(lambda: _dup(handle))
    rows = await analyses(db, row.signal_id)
    assert [r["analysis_number"] for r in rows] == [0, 1]


async def _dup(handle) -> MonitorView:
    state = await _state(handle)
    assert state.counts.duplicate == 1
    return state


async def test_updates_on_an_ended_monitor_are_refused(client, database_url, db):
    row = await insert_signal(db)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.abandon(90))
        handle = await m.start(row.signal_id)
        assert (await handle.result()).status == "expired"
        for send in (
            lambda: handle.execute_update(async_update(SignalMonitorWorkflow.abandon), "late"),
            lambda: handle.execute_update(SignalMonitorWorkflow.set_limit, 9),
            lambda: handle.execute_update(async_update(SignalMonitorWorkflow.reanalyze)),
        ):
            with pytest.raises(Exception):  # noqa: B017 - an ended workflow answers with an RPC error, not an update failure
                await send()
