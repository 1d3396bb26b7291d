"""The figures operators watch (docs/rollout.md, "Metrics"), scraped from a real worker and intake
run as processes: decisions by kind and backend, errors by dependency and kind, the three latency
histograms, tokens and cost by model, monitors and positions running, intake decisions by reason,
the rollout mode. Every metric the shipped alert rules use is one these processes (or the
bridge's declared metrics) export, so a renamed metric cannot leave an alert silently dead."""

from __future__ import annotations

import re
from pathlib import Path

from fakes.llm_proxy import Answer, Fault, ManageAnswer
from signal_bridge.metrics import COUNTERS, GAUGES
from signal_bridge.metrics import PREFIX as BRIDGE_PREFIX
from tests.helpers.metrics import metered_worker_and_intake, scrape, value
from tests.helpers.positions import candle
from tests.helpers.support import eventually, insert_signal, status_is
from workflows.monitor.workflow import SignalMonitorWorkflow
from workflows.position.workflow import PositionManagerWorkflow

ALERTS = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml"


async def test_operator_metrics_from_worker_and_intake(client, postgres_server, temporal_address):
    async with metered_worker_and_intake(
        postgres_server,
        temporal_address,
        common={"SIGNAL_MONITOR_ANALYSIS_RETRY_INITIAL_SECONDS": "0.2"},
        intake={"SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS": "1"},
    ) as stack:
        db, proxy = stack.db, stack.proxy
        row = await insert_signal(db, symbol="SOLUSDT", interval="1m", price=100.0)
        await insert_signal(db, tier="pro")  # left alone: intake_decisions{reason="tier"}
        proxy.script(row.signal_id, Fault.status(503), Answer.wait(50), Answer.enter(90, entry=100.0, stop_loss=95.0))
        proxy.script_position(row.signal_id, ManageAnswer.hold())
        monitor = client.get_workflow_handle_for(SignalMonitorWorkflow.run, row.workflow_id)
        await eventually(lambda: status_is(db, row.signal_id, "monitoring"), timeout=60)
        await monitor.signal(SignalMonitorWorkflow.candle_closed, candle(row, 1, 99, 101, 98, 100))
        await eventually(lambda: status_is(db, row.signal_id, "in_position"), timeout=30)
        position = client.get_workflow_handle_for(PositionManagerWorkflow.run, f"position-{row.signal_id}")

        async def positions_running():
            text = await scrape(stack.worker_metrics)
            assert value(text, "signal_monitor_positions_running", task_queue=stack.queue) == 1
            assert value(text, "signal_monitor_monitors_running", task_queue=stack.queue) == 0

        await eventually(positions_running, timeout=30)
        await position.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 101, 99, 100.5))

        async def managed():
            text = await scrape(stack.worker_metrics)
            assert value(text, "signal_monitor_decisions", kind="management", decision="hold") == 1
            return text

        worker_text = await eventually(managed, timeout=30)

        async def intake_counted():
            text = await scrape(stack.intake_metrics)
            assert value(text, "signal_monitor_intake_decisions", reason="started") == 1
            assert value(text, "signal_monitor_intake_decisions", reason="tier") == 1
            return text

        intake_text = await eventually(intake_counted, timeout=30)
        stored_tokens = await db.fetchval(
            """SELECT (SELECT sum(gemini_tokens_used) FROM signal_analyses WHERE signal_id = $1::uuid)
                    + (SELECT sum(tokens_used) FROM position_management_decisions WHERE signal_id = $1::uuid)""",
            row.signal_id,
        )

    backend = {"backend": "llm-proxy"}
    assert value(worker_text, "signal_monitor_decisions", kind="analysis", decision="continue", **backend) == 1
    assert value(worker_text, "signal_monitor_decisions", kind="analysis", decision="enter", **backend) == 1
    assert value(worker_text, "signal_monitor_errors", dependency="llm_proxy", kind="http_5xx") == 1
    assert value(worker_text, "signal_monitor_errors") == 1
    # analysis #0 failed once then answered, #1, one management call: 4 model calls, one failed.
    assert value(worker_text, "signal_monitor_model_call_latency_count", operation="analyze", outcome="ok") == 2
    assert value(worker_text, "signal_monitor_model_call_latency_count", operation="analyze", outcome="error") == 1
    assert value(worker_text, "signal_monitor_model_call_latency_count", operation="manage", outcome="ok") == 1
    assert value(worker_text, "signal_monitor_record_latency_count", what="analysis") == 2
    assert value(worker_text, "signal_monitor_record_latency_count", what="management") == 1
    # Only analysis #1 had a candle (the close two hours ago): its delay is at least that.
    assert value(worker_text, "signal_monitor_close_to_analysis_latency_count") == 1
    assert value(worker_text, "signal_monitor_close_to_analysis_latency_sum") > 3600
    # The stand-in names itself; an unknown model is priced as the platform's (gemini-2.5-flash).
    model = {"model": "fake-llm-proxy"}
    tokens = value(worker_text, "signal_monitor_model_tokens", **model)
    assert tokens == stored_tokens == 2 * 1100 + 900, (tokens, stored_tokens)  # two analyses, one management
    cost = value(worker_text, "signal_monitor_model_call_cost_usd_sum", **model)
    assert abs(cost - tokens * (0.30 * 0.95 + 2.50 * 0.05) / 1e6) < 1e-9, cost
    assert value(intake_text, "signal_monitor_rollout_mode", mode="all") == 1
    assert value(intake_text, "signal_monitor_rollout_mode", mode="off") == 0
    assert value(intake_text, "signal_monitor_rollout_percent") == 100  # `all` admits every user

    # Every signal_monitor_* series an alert rule names exists (bridge: as declared by the bridge).
    exported = _names(worker_text) | _names(intake_text)
    exported |= {BRIDGE_PREFIX + n for n in (*COUNTERS, *GAUGES)}
    exported.add("signal_monitor_live_orders_refused")  # runtime/live_rollout.count_refusal, for the live backend
    used = set(re.findall(r"\bsignal_monitor_\w+", ALERTS.read_text()))
    assert used, "no metric named in the alert rules"
    missing = sorted(n for n in used if n not in exported and _base(n) not in exported)
    assert not missing, missing


def _names(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^(signal_monitor_\w+?)(?:\{| )", text, re.M)}


def _base(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)
