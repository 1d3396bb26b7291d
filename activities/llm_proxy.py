"""The `analyze_signal` activity: one llm-proxy `analyze-signal` call per attempt.

Temporal owns retries (the httpx transport never retries): errors are raised as ApplicationError
types the workflow's RetryPolicy understands, with `next_retry_delay` from `Retry-After` on 429.
The API key lives only in this process's httpx client headers; it is redacted from every message
that could reach workflow history or a log."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import activity_metrics
from runtime.redaction import Redactor
from workflows.common import names
from workflows.monitor.decisions import normalise_proxy_decision
from workflows.monitor.models import Analysis, AnalyzeSignalInput
from workflows.position.models import ManagementAnswer

if TYPE_CHECKING:
    from activities.llm_pacing import LlmCallPacer

TRIGGER_SOURCE = "monitoring-worker"
MAX_RETRY_AFTER = timedelta(minutes=5)
_HEARTBEAT_EVERY = 2.0

# Error types (workflows/common/names.py, where the workflow's RetryPolicy names those no retry helps).
AUTH_ERROR = names.LLM_AUTH_ERROR
REQUEST_REJECTED = names.LLM_REQUEST_REJECTED
RATE_LIMITED = names.LLM_RATE_LIMITED
SERVER_ERROR = names.LLM_SERVER_ERROR
UNAVAILABLE = names.LLM_UNAVAILABLE
TIMEOUT = names.LLM_TIMEOUT
BAD_ANSWER = names.LLM_BAD_ANSWER

Parsed = TypeVar("Parsed", Analysis, ManagementAnswer)


def build_request_body(input: AnalyzeSignalInput) -> dict[str, Any]:
    ctx = input.context
    candle = input.candle
    if candle is None:
        timestamp = ctx.signal_time
        price = ctx.price
        candle_json = None
    else:
        timestamp = candle.close_time()
        price = float(candle.c)
        candle_json = {
            "openTime": candle.t,
            "closeTime": candle.T,
            "open": candle.o,
            "high": candle.h,
            "low": candle.l,
            "close": candle.c,
            "volume": candle.v,
        }
    params: dict[str, Any] = {
        "signalId": ctx.signal_id,
        "symbol": ctx.symbol,
        "traderId": ctx.trader_id,
        "userId": ctx.user_id,
        "timestamp": timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "price": price,
        "strategy": ctx.strategy if ctx.strategy is not None else {},
        "interval": ctx.interval,
        "candle": candle_json,
        "reanalysis": input.analysis_number,
        "maxReanalyses": input.max_reanalyses,
        "previousDecisions": [d.model_dump() for d in input.previous_decisions[-5:]],
    }
    if input.candle is None:
        params["signal"] = {
            "changePercent": ctx.change_percent,
            "volume": ctx.volume,
            "indicatorData": ctx.indicator_data,
        }
    return {"operation": "analyze-signal", "params": params}


def retry_after(response: httpx.Response) -> timedelta | None:
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        delay = timedelta(seconds=max(0.0, float(raw)))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = max(timedelta(0), when - datetime.now(UTC))
    return min(delay, MAX_RETRY_AFTER)


@dataclass(frozen=True)
class AnswerParts:
    """What every llm-proxy operation's answer carries, validated."""

    confidence: float
    reasoning: str
    raw_ai_response: str | None
    tokens_used: int | None
    model_name: str | None


def envelope_data(body: Any, bad: Callable[[str], ApplicationError]) -> dict[str, Any]:
    """The contract's success envelope's `data`, or `bad(why)`."""
    if not isinstance(body, dict):
        raise bad("body is not a JSON object")
    if body.get("success") is not True:
        error = body.get("error")
        detail = error.get("message") if isinstance(error, dict) else None
        raise bad(f"success is not true ({str(detail)[:200] if detail else 'no error message'})")
    data = body.get("data")
    if not isinstance(data, dict):
        raise bad("missing data")
    return data


def answer_parts(body: dict[str, Any], data: dict[str, Any], bad: Callable[[str], ApplicationError]) -> AnswerParts:
    """Confidence (0..100), reasoning (non-empty) and the metadata, or `bad(why)`."""
    confidence = data.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 100:
        raise bad(f"confidence {str(confidence)[:50]!r} is not a number from 0 to 100")
    reasoning = data.get("reasoning")
    if not isinstance(reasoning, str) or not reasoning.strip():
        raise bad("empty reasoning")
    meta, use = data.get("metadata"), body.get("usage")
    metadata: dict[str, Any] = meta if isinstance(meta, dict) else {}
    usage: dict[str, Any] = use if isinstance(use, dict) else {}
    tokens = metadata.get("tokensUsed", usage.get("total_tokens"))
    raw = metadata.get("rawAiResponse")
    model = metadata.get("modelName")
    return AnswerParts(
        confidence=float(confidence),
        reasoning=reasoning.strip(),
        raw_ai_response=raw if isinstance(raw, str) else (json.dumps(raw) if raw is not None else None),
        tokens_used=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        model_name=model if isinstance(model, str) else None,
    )


def parse_answer(body: Any, latency_ms: int) -> Analysis:
    """The contract's success envelope, or a BadAnswer: never a silent `continue`."""

    def bad(why: str) -> ApplicationError:
        return ApplicationError(f"llm-proxy gave a bad answer: {why}", type=BAD_ANSWER)

    data = envelope_data(body, bad)
    decision = normalise_proxy_decision(data.get("decision"))
    if decision is None:
        raise bad(f"unknown decision {str(data.get('decision'))[:50]!r}")
    parts = answer_parts(body, data, bad)

    def obj(value: Any) -> dict | None:
        return value if isinstance(value, dict) else None

    return Analysis(
        decision=decision,
        key_levels=obj(data.get("keyLevels")),
        trade_plan=obj(data.get("tradePlan")),
        technical_indicators=obj(data.get("technicalIndicators")),
        latency_ms=latency_ms,
        **asdict(parts),
    )


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return f"{error.get('code', '')} {error.get('message', '')}".strip()[:200]
    except ValueError:
        pass
    return response.text[:120].replace("\n", " ")


class LlmProxy:
    """Holds the one httpx client of the worker (its key, its connection pool)."""

    def __init__(self, client: httpx.AsyncClient, url: str, api_key: str, pacer: LlmCallPacer | None = None):
        self._client = client
        self._url = url
        self._key = api_key
        self._pacer = pacer
        self._redact = Redactor([api_key])

    def _error(self, message: str, type: str, **kwargs: Any) -> ApplicationError:
        activity_metrics.llm_proxy_error(type)
        return ApplicationError(self._redact(message), type=type, **kwargs)

    @activity.defn(name=names.ANALYZE_SIGNAL)
    async def analyze_signal(self, input: AnalyzeSignalInput) -> Analysis:
        correlation = f"{input.context.signal_id}:{input.analysis_number}"
        analysis = await self.ask(build_request_body(input), correlation, parse_answer)
        activity.logger.info(
            "signal %s analysis %s: %s %.0f (%d ms)",
            input.context.signal_id,
            input.analysis_number,
            analysis.decision,
            analysis.confidence,
            analysis.latency_ms,
        )
        return analysis

    async def call(self, body: dict[str, Any], correlation_id: str) -> tuple[Any, int]:
        """One llm-proxy request from inside an activity: paced, heartbeating, every HTTP status
        and transport error turned into the error types the RetryPolicies know. Returns the
        decoded JSON body of a 200 and the latency in ms; the caller parses its operation's answer."""
        info = activity.info()
        headers = {
            "Authorization": f"Bearer {self._key}",
            "x-trigger-source": TRIGGER_SOURCE,
            "x-correlation-id": correlation_id,
        }
        started = time.monotonic()
        sent = [started]
        extensions: dict[str, Any] = {}
        pacer = self._pacer
        if pacer is not None:

            async def trace(event: str, info: dict[str, Any]) -> None:
                # The queue-wide slot is taken here, once the connection exists and the request
                # is about to be written: connect jitter cannot move its arrival past the slot.
                if event.endswith(".send_request_headers.started"):
                    await pacer.wait_turn()
                    sent[0] = time.monotonic()

            extensions["trace"] = trace
        request = asyncio.ensure_future(self._client.post(self._url, json=body, headers=headers, extensions=extensions))
        try:
            # Heartbeats let Temporal notice a dead worker long before the call's own timeout,
            # and deliver cancellation when an operator cancels the workflow.
            while True:
                done, _ = await asyncio.wait({request}, timeout=_HEARTBEAT_EVERY)
                if done:
                    break
                activity.heartbeat()
            response = request.result()
        except asyncio.CancelledError:
            request.cancel()
            raise
        except httpx.TimeoutException as exc:
            activity_metrics.llm_proxy_answered(timedelta(seconds=time.monotonic() - sent[0]), TIMEOUT)
            raise self._error(f"llm-proxy timed out ({type(exc).__name__})", TIMEOUT) from None
        except httpx.LocalProtocolError as exc:
            # The request cannot even be sent (e.g. an illegal header value): no retry changes that.
            raise self._error(
                f"llm-proxy request could not be sent: {type(exc).__name__}: {exc}",
                REQUEST_REJECTED,
                non_retryable=True,
            ) from None
        except httpx.TransportError as exc:
            raise self._error(f"llm-proxy unreachable: {type(exc).__name__}: {exc}", UNAVAILABLE) from None
        except Exception as exc:
            # Anything else would reach history with its own message: redacted like the rest.
            raise self._error(f"llm-proxy call failed: {type(exc).__name__}: {exc}", UNAVAILABLE) from None
        latency_ms = int((time.monotonic() - sent[0]) * 1000)  # from the request's slot on
        code = response.status_code
        activity_metrics.llm_proxy_answered(timedelta(milliseconds=latency_ms), "ok" if code == 200 else f"http_{code}")
        where = f"attempt {info.attempt}, HTTP {code}"
        self._check_status(response, where)
        try:
            return response.json(), latency_ms
        except ValueError:
            raise self._error(f"llm-proxy answer is not JSON ({where})", BAD_ANSWER) from None

    async def ask(self, body: dict[str, Any], correlation_id: str, parse: Callable[[Any, int], Parsed]) -> Parsed:
        """One operation (`call`), its answer parsed from the 200's body (a BadAnswer if it is not
        one), tokens counted."""
        reply, latency_ms = await self.call(body, correlation_id)
        try:
            answer = parse(reply, latency_ms)
        except ApplicationError as exc:
            raise self._error(str(exc), BAD_ANSWER) from None
        tokens = answer.tokens_used
        if tokens:
            activity_metrics.tokens_used(tokens)
        return answer

    def _check_status(self, response: httpx.Response, where: str) -> None:
        code = response.status_code
        if code in (401, 403):
            raise self._error(f"llm-proxy refused the key ({where})", AUTH_ERROR, non_retryable=True)
        if code == 429:
            delay = retry_after(response)
            raise self._error(
                f"llm-proxy rate limited ({where}, Retry-After {response.headers.get('retry-after', 'absent')})",
                RATE_LIMITED,
                next_retry_delay=delay,
            )
        if code in (408, 425):
            raise self._error(f"llm-proxy timed out the request ({where})", TIMEOUT)
        if 400 <= code < 500:
            raise self._error(
                f"llm-proxy rejected the request ({where}): {_error_detail(response)}",
                REQUEST_REJECTED,
                non_retryable=True,
            )
        if code >= 500:
            raise self._error(f"llm-proxy failed ({where}): {_error_detail(response)}", SERVER_ERROR)
        if code != 200:
            raise self._error(f"llm-proxy answered an unexpected status ({where})", BAD_ANSWER)


def new_http_client(timeout_seconds: float, max_connections: int) -> httpx.AsyncClient:
    # retries=0: Temporal's RetryPolicy is the only retry loop.
    transport = httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_connections=max_connections))
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        headers={"Content-Type": "application/json"},
        follow_redirects=False,
    )
