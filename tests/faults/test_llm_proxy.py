"""Fault suite, llm-proxy: every way the proxy can misbehave, one monitor each, all at once on one
worker. Each fault hits the analysis of a candle close; the retry gets a good answer. The close is
analysed exactly once, nothing is left waiting, and the signal agrees with its workflow.
(tests/monitor/test_retries.py checks the retry timing itself: Retry-After honoured, backoff.)"""

from __future__ import annotations

import asyncio
from functools import partial

from fakes.llm_proxy import Answer, FakeLlmProxy, Fault
from tests.helpers.fault_checks import Expectation, assert_three_checks
from tests.helpers.monitor import TEST_KEY, monitor_stack
from tests.helpers.support import eventually, insert_signal, kline
from workflows.monitor.models import MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow

CLIENT_TIMEOUT = 2.0  # the worker's llm-proxy read timeout, so `timeout` faults are quick

FAULTS = {
    "429 with Retry-After": Fault.status(429, retry_after=1),
    "429 without Retry-After": Fault.status(429),
    "500": Fault.status(500),
    "502": Fault.status(502),
    "503": Fault.status(503),
    "504": Fault.status(504),
    "timeout": Fault.timeout(CLIENT_TIMEOUT * 2),
    "disconnect": Fault.disconnect(),
    "reset": Fault.disconnect(reset=True),
    "truncated body": Fault.truncated(),
    "truncated connection": Fault.truncated(abort=True),
    "not JSON": Fault.not_json(),
    "success false": Fault.success_false(),
    "unknown decision": Fault.bad_answer("unknown_decision"),
    "confidence out of range": Fault.bad_answer("confidence_out_of_range"),
    "empty reasoning": Fault.bad_answer("empty_reasoning"),
    # Slow but steady: every read is quick, the whole answer takes longer than the read timeout.
    "slow trickle": Fault.slow_trickle(CLIENT_TIMEOUT * 1.5, chunks=6, then=Answer.wait(55)),
}


async def _analysed(handle, n: int) -> MonitorView:
    state = await handle.query(SignalMonitorWorkflow.state)
    assert state.counts.analysed == n and not state.analysing, state
    return state


async def test_every_llm_proxy_fault_is_retried_into_exactly_one_analysis(client, database_url, db):
    rows = {name: await insert_signal(db, interval="1m", max_reanalyses=10) for name in FAULTS}
    async with monitor_stack(client, database_url, llm_timeout_seconds=CLIENT_TIMEOUT, llm_max_concurrent=20) as m:
        handles = {}
        for name, row in rows.items():
            m.proxy.script(row.signal_id, Answer.wait(50), FAULTS[name], Answer.wait(56))
            handles[name] = await m.start(row.signal_id)
        await asyncio.gather(*(eventually(partial(_analysed, h, 1), timeout=60) for h in handles.values()))
        for name, row in rows.items():
            await handles[name].signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        states = await asyncio.gather(*(eventually(partial(_analysed, h, 2), timeout=60) for h in handles.values()))
        expected = [Expectation(row.signal_id, {kline(row, 2)["t"]}) for row in rows.values()]
        fig = await assert_three_checks(client, db, "llm-proxy: every fault kind once, then answered", expected)
    for name, row in rows.items():
        sent = m.proxy.requests_for(row.signal_id)
        # initial, the faulted attempt (a slow trickle is itself the answer), its retry
        assert len(sent) == (2 if name == "slow trickle" else 3), (name, [r.outcome for r in sent])
        assert all(r.authorized for r in sent)
    assert all(s.counts.failed_analyses == 0 for s in states)
    assert fig.analyses_stored == 2 * len(FAULTS)


async def test_connection_refused_then_proxy_back(client, database_url, db):
    """llm-proxy down (nothing listens on its port) during an analysis, back a few seconds later."""
    row = await insert_signal(db, interval="1m", max_reanalyses=10)
    proxy = FakeLlmProxy(api_key=TEST_KEY)
    await proxy.start()
    try:
        async with monitor_stack(client, database_url, proxy=proxy, llm_timeout_seconds=CLIENT_TIMEOUT) as m:
            proxy.script(row.signal_id, Answer.wait(50))
            handle = await m.start(row.signal_id)
            await eventually(lambda: _analysed(handle, 1), timeout=30)
            await proxy.stop()
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))

            async def refused() -> None:
                state = await handle.query(SignalMonitorWorkflow.state)
                assert state.analysing
                desc = await handle.describe()
                pending = desc.raw_description.pending_activities
                assert pending and pending[0].attempt >= 2, pending

            await eventually(refused, timeout=30)
            await proxy.start()  # the same port again
            proxy.script(row.signal_id, Answer.wait(57))
            await eventually(lambda: _analysed(handle, 2), timeout=60)
            await assert_three_checks(
                client,
                db,
                "llm-proxy: connection refused, then back",
                [Expectation(row.signal_id, {kline(row, 2)["t"]})],
            )
    finally:
        await proxy.stop()
    # The refused attempts never reached it: the initial analysis and the retry that got through.
    assert len(proxy.requests_for(row.signal_id)) == 2
