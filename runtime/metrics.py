"""Prometheus metrics for every process (worker, bridge, intake), on one endpoint per process.

The Temporal SDK's own runtime metrics (task latencies, slots, sticky cache, ...) and the project's
metrics go through the same `temporalio.runtime.Runtime` meter, so one scrape target shows both.
`SIGNAL_MONITOR_METRICS_ADDRESS` (e.g. `0.0.0.0:9464`) turns the endpoint on; unset, metrics are
recorded nowhere. Workflow code must use `workflow.metric_meter()` (replay-safe) and activities
`activity.metric_meter()`, both of which inherit this runtime; other code uses `meter()`.

Label values are never secrets or free text: symbols, intervals, decisions, error kinds only."""

from __future__ import annotations

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

PREFIX = "signal_monitor_"

_runtime: Runtime | None = None


def init_runtime(bind_address: str | None = None) -> Runtime:
    """The process's Temporal runtime, serving Prometheus on `bind_address`
    (`Settings.metrics_address`) when one is given. Call once, before the first client connects;
    later calls return it."""
    global _runtime
    if _runtime is not None:
        return _runtime
    if bind_address:
        _runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address, durations_as_seconds=True))
        )
        Runtime.set_default(_runtime, error_if_already_set=False)
    else:
        _runtime = Runtime.default()
    return _runtime


def meter() -> MetricMeter:
    """The meter outside workflows and activities (bridge, intake, worker plumbing)."""
    return init_runtime().metric_meter
