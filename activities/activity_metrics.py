"""The project's own metrics recorded by activities, through `activity.metric_meter()`: the
worker's Temporal runtime exports them next to the SDK's (see runtime/metrics.py), already
labelled with namespace, task queue and activity type. Labels here are fixed words only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

from runtime.metrics import PREFIX


def analysis_recorded(decision: str, proxy_decision: str) -> None:
    """One analysis row written (counted once: a retry that finds the row counts nothing)."""
    activity.metric_meter().create_counter(
        PREFIX + "analyses", "analyses recorded, by monitor decision (enter, continue, abandon)"
    ).add(1, {"decision": decision, "proxy_decision": proxy_decision})


def record_latency(elapsed: timedelta, what: str) -> None:
    """One write of an analysis (`what="analysis"`) or a management decision (`"management"`)."""
    activity.metric_meter().create_histogram_timedelta(
        PREFIX + "record_latency", "recording an analysis or management decision", "duration"
    ).record(elapsed, {"what": what})


def llm_proxy_answered(latency: timedelta, outcome: str) -> None:
    """Latency of one llm-proxy attempt that got an answer or timed out; outcome is `ok` or an error kind."""
    activity.metric_meter().create_histogram_timedelta(
        PREFIX + "llm_proxy_latency", "llm-proxy analyze-signal latency per attempt", "duration"
    ).record(latency, {"outcome": outcome})


def llm_proxy_error(kind: str) -> None:
    activity.metric_meter().create_counter(
        PREFIX + "llm_proxy_errors", "failed llm-proxy attempts, by kind (the activity's error type)"
    ).add(1, {"kind": kind})


def tokens_used(tokens: int) -> None:
    activity.metric_meter().create_counter(PREFIX + "llm_tokens_used", "model tokens reported by llm-proxy").add(tokens)


def model_call(cost_usd: float | None, abstained: bool, operation: str) -> None:
    """One decision by the `model` backend: its cost (micro-USD, a counter holds integers) and
    whether it abstained."""
    meter = activity.metric_meter()
    if cost_usd:
        meter.create_counter(
            PREFIX + "model_cost_micro_usd", "cost of model decisions in millionths of a US dollar"
        ).add(round(cost_usd * 1_000_000), {"operation": operation})
    meter.create_counter(PREFIX + "model_decisions", "model decisions, by operation and abstained").add(
        1, {"operation": operation, "abstained": "true" if abstained else "false"}
    )
