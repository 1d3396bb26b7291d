"""What operators watch, measured around the activities instead of inside them (docs/rollout.md,
"Metrics"): a worker interceptor sees every activity's input, result and error, so the figures
need no change to the activities' own code.

- `signal_monitor_close_to_analysis_latency` (histogram, s): a candle's close time → its analysis
  activity starting (bridge, Temporal and queueing delay together).
- `signal_monitor_model_call_latency{operation,outcome,backend}` (histogram, s): one attempt of
  `analyze_signal` / `manage_position`, whatever answered it.
- `signal_monitor_record_latency{what}` (histogram, s): `record_analysis` / `record_position_decision`.
- `signal_monitor_decisions{kind,decision,backend}`: analyses (`kind="analysis"`, the monitor's
  decision) and management decisions (`kind="management"`, the action) recorded, once each.
- `signal_monitor_model_tokens{model}`, `signal_monitor_model_call_cost_usd{model}` (histogram of
  the estimated cost per call: `_sum` is the spend): model usage as the answers report it.
- `signal_monitor_errors{dependency,kind}`: failed attempts, by dependency (`llm_proxy`,
  `database`) and kind (`http_4xx`, `http_429`, `http_5xx`, `timeout`, `unreachable`,
  `bad_answer`, `connection`, `permanent`, `server`).

Labels are fixed words; a model name that is not a plain identifier is counted as `other`."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities import activity_metrics
from activities.db_errors import is_permanent
from runtime.metrics import PREFIX
from runtime.model_prices import estimated_cost_usd
from workflows.common import names
from workflows.monitor.models import AnalyzedSignal
from workflows.position.models import ManagedPosition

DEFAULT_BACKEND = "llm-proxy"
_MODEL_CALLS = {
    names.ANALYZE_SIGNAL: "analyze",
    names.ANALYZE_AND_RECORD_SIGNAL: "analyze",
    names.MANAGE_POSITION_ACTIVITY: "manage",
    names.MANAGE_AND_RECORD_POSITION_ACTIVITY: "manage",
}
_RECORDS = {names.RECORD_ANALYSIS: "analysis", names.RECORD_POSITION_DECISION_ACTIVITY: "management"}
_PLAIN = re.compile(r"^[A-Za-z0-9._/:-]{1,80}$")
# llm-proxy's error types (activities/llm_proxy.py) as the HTTP class or failure they stand for.
LLM_ERROR_KINDS = {
    names.LLM_AUTH_ERROR: "http_4xx",
    names.LLM_REQUEST_REJECTED: "http_4xx",
    names.LLM_RATE_LIMITED: "http_429",
    names.LLM_SERVER_ERROR: "http_5xx",
    names.LLM_TIMEOUT: "timeout",
    names.LLM_UNAVAILABLE: "unreachable",
    names.LLM_BAD_ANSWER: "bad_answer",
}


def model_label(name: object) -> str:
    return name if isinstance(name, str) and _PLAIN.match(name) else "other"


def error_kind(exc: BaseException) -> tuple[str, str] | None:
    """(dependency, kind) of a failed attempt, or None for what is not a dependency's failure."""
    if isinstance(exc, ApplicationError) and exc.type in LLM_ERROR_KINDS:
        return "llm_proxy", LLM_ERROR_KINDS[exc.type]
    if isinstance(exc, ApplicationError) and exc.type == names.PERMANENT_DATABASE_ERROR:
        return "database", "permanent"
    if isinstance(exc, asyncpg.PostgresError):
        return "database", "permanent" if is_permanent(exc) else "server"
    if isinstance(exc, (OSError, asyncpg.InterfaceError, TimeoutError)):
        return "database", "connection"
    return None


class OperatorMetrics(Interceptor):
    """Registered on every worker (`Worker(interceptors=[OperatorMetrics()])`)."""

    def __init__(self, backend: str = DEFAULT_BACKEND) -> None:
        self.backend = backend

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self.backend)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, backend: str) -> None:
        super().__init__(next)
        self.backend = backend

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        meter = activity.metric_meter()
        arg = input.args[0] if input.args else None
        candle = getattr(arg, "candle", None) if _MODEL_CALLS.get(name) == "analyze" else None
        if candle is not None:
            closed_at = datetime.fromtimestamp((candle.T + 1) / 1000, UTC)
            meter.create_histogram_timedelta(
                PREFIX + "close_to_analysis_latency", "candle close -> its analysis activity started", "duration"
            ).record(max(timedelta(0), datetime.now(UTC) - closed_at))
        started = time.monotonic()
        outcome = "ok"
        try:
            result = await super().execute_activity(input)
        except BaseException as exc:
            outcome = "error"
            kind = error_kind(exc)
            if kind is not None:
                meter.create_counter(PREFIX + "errors", "failed attempts, by dependency and kind").add(
                    1, {"dependency": kind[0], "kind": kind[1]}
                )
            raise
        finally:
            elapsed = timedelta(seconds=time.monotonic() - started)
            if name in _MODEL_CALLS:
                meter.create_histogram_timedelta(
                    PREFIX + "model_call_latency", "one model call (activity attempt)", "duration"
                ).record(elapsed, {"operation": _MODEL_CALLS[name], "outcome": outcome, "backend": self.backend})
            elif name in _RECORDS:
                activity_metrics.record_latency(elapsed, _RECORDS[name])
        if isinstance(result, AnalyzedSignal):  # the analysis and its row in one activity
            self._usage(meter, result.analysis)
            if result.recorded is not None and result.recorded.inserted:
                self._decided(meter, "analysis", result.monitor_decision)
        elif isinstance(result, ManagedPosition):  # a hold and its row in one activity
            self._usage(meter, result.answer)
            if result.recorded is not None and result.recorded.inserted:
                self._decided(meter, "management", "hold")
        elif name in _MODEL_CALLS:
            self._usage(meter, result)
        elif name in _RECORDS and getattr(result, "inserted", False):
            field = "monitor_decision" if name == names.RECORD_ANALYSIS else "action"
            self._decided(meter, _RECORDS[name], getattr(arg, field, "unknown"))
        return result

    def _decided(self, meter: Any, kind: str, decision: object) -> None:
        meter.create_counter(PREFIX + "decisions", "analyses and management decisions recorded").add(
            1, {"kind": kind, "decision": str(decision), "backend": self.backend}
        )

    @staticmethod
    def _usage(meter: Any, result: Any) -> None:
        tokens = getattr(result, "tokens_used", None) or 0
        model = model_label(getattr(result, "model_name", None))
        if tokens > 0:
            meter.create_counter(PREFIX + "model_tokens", "model tokens reported, by model").add(
                int(tokens), {"model": model}
            )
        cost = estimated_cost_usd(getattr(result, "model_name", None), int(tokens))
        meter.create_histogram_float(
            PREFIX + "model_call_cost_usd", "estimated cost of each model call in USD (sum: the spend)", "USD"
        ).record(float(cost), {"model": model})
