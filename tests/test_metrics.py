"""Prometheus endpoints of the worker and the intake, as separate processes configured by their
environment: the Temporal SDK's runtime metrics next to ours, with counts that match what
happened, and no secret anywhere in a scrape. Also: the intake's JSON log lines carry the signal
and workflow ids."""

from __future__ import annotations

import json

from temporalio.service import RPCError

from fakes.llm_proxy import Answer, Fault
from tests.helpers.metrics import metered_worker_and_intake, scrape, value
from tests.helpers.monitor import TEST_KEY
from tests.helpers.support import eventually, insert_signal, kline, status_is
from workflows.monitor.workflow import SignalMonitorWorkflow


async def test_worker_and_intake_metrics_endpoints(client, postgres_server, temporal_address):
    # No periodic sweep racing the notifications: every signal here is counted as source="notify".
    async with metered_worker_and_intake(
        postgres_server,
        temporal_address,
        common={"SIGNAL_MONITOR_LOG_FORMAT": "json"},
        intake={"SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS": "3600"},
    ) as stack:
        db, proxy = stack.db, stack.proxy
        # Inserted once both are up (their endpoints answer); the intake starts it, the worker analyses it.
        row = await insert_signal(db, symbol="BNBUSDT", interval="1m")
        await insert_signal(db, tier="pro")  # left alone
        proxy.script(row.signal_id, Fault.status(500), Answer.wait(50), Answer.enter(90))
        handle = client.get_workflow_handle_for(SignalMonitorWorkflow.run, row.workflow_id)

        async def analysed(n: int):
            try:
                state = await handle.query(SignalMonitorWorkflow.state)
            except RPCError as exc:  # not started by the intake yet
                raise AssertionError(exc.message) from None
            assert state.counts.analysed == n and not state.analysing, state

        await eventually(lambda: analysed(1), timeout=60)

        async def running_gauge(expected: float):
            text = await scrape(stack.worker_metrics)
            assert value(text, "signal_monitor_monitors_running", task_queue=stack.queue) == expected
            return text

        await eventually(lambda: running_gauge(1), timeout=30)
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: status_is(db, row.signal_id, "in_position"), timeout=30)
        worker_text = await eventually(lambda: running_gauge(0), timeout=30)

        async def intake_counted():
            text = await scrape(stack.intake_metrics)
            assert value(text, "signal_monitor_intake_monitors_started", source="notify") == 1
            assert value(text, "signal_monitor_intake_signals_ineligible", reason="tier") == 1
            return text

        intake_text = await eventually(intake_counted, timeout=30)

    # The SDK's own runtime metrics, from the same endpoint.
    for name in ("temporal_workflow_completed", "temporal_activity_execution_latency_count"):
        assert value(worker_text, name) >= 1, name
    assert "temporal_worker_task_slots_available" in worker_text
    assert "temporal_request" in intake_text  # the intake's client calls

    # Ours: one analysis per decision, the failed attempt by kind, latency per attempt, tokens.
    assert value(worker_text, "signal_monitor_analyses", decision="continue", proxy_decision="wait") == 1
    assert value(worker_text, "signal_monitor_analyses", decision="enter", proxy_decision="enter_trade") == 1
    assert value(worker_text, "signal_monitor_analyses") == 2
    assert value(worker_text, "signal_monitor_llm_proxy_errors", kind="LlmProxyServerError") == 1
    assert value(worker_text, "signal_monitor_llm_proxy_errors") == 1
    assert value(worker_text, "signal_monitor_llm_proxy_latency_count", outcome="ok") == 2
    assert value(worker_text, "signal_monitor_llm_proxy_latency_count", outcome="http_500") == 1
    assert value(worker_text, "signal_monitor_llm_tokens_used") == 2 * 1100
    assert value(intake_text, "signal_monitor_intake_signals_seen", source="notify") == 2
    assert value(intake_text, "signal_monitor_intake_listening") == 1

    for text in (worker_text, intake_text):
        assert TEST_KEY not in text and "sk-test" not in text
        assert stack.url not in text and "Bearer" not in text

    # Structured logs: the intake's line for the start names the signal and its workflow.
    lines = [json.loads(line) for line in stack.intake.output().splitlines() if line.startswith("{")]
    started = [entry for entry in lines if entry.get("signal_id") == row.signal_id and "started" in entry["msg"]]
    assert started and started[0]["workflow_id"] == row.workflow_id, lines
    assert TEST_KEY not in stack.worker.output()
