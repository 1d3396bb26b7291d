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
