"""The `analyze_signal` activity: one llm-proxy `analyze-signal` call per attempt.

Temporal owns retries (the httpx transport never retries): errors are raised as ApplicationError
types the workflow's RetryPolicy understands, with `next_retry_delay` from `Retry-After` on 429.
The API key lives only in this process's httpx client headers; it is redacted from every message
that could reach workflow history or a log, and from the model's text before it is kept anywhere.

An answer is not trusted: at most `MAX_ANSWER_BYTES` are read (as sent and decompressed), it must
name the request's `signalId` (and `positionId`; a response `x-correlation-id`, when present, must be
the request's), its text and objects are cleaned and bounded (activities/answer_hygiene.py), and a
connection that delivered bytes nobody asked for is closed (activities/http_answers.py)."""

from __future__ import annotations

import asyncio
import email.utils
import functools
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
from activities.answer_hygiene import (
    MAX_MODEL_NAME_CHARS,
    MAX_REASONING_CHARS,
    AnswerHygiene,
    TooLarge,
)
from activities.http_answers import (
    ACCEPT_ENCODING,
    AnswerTooLarge,
    AnswerUnreadable,
    drop_poisoned_connections,
    read_bounded,
)
from activities.raw_answers import analysis_correlation
from activities.trade_levels import incoherent_entry
from runtime.redaction import Redactor
from workflows.common import names
from workflows.monitor.decisions import normalise_proxy_decision
from workflows.monitor.models import Analysis, AnalyzeSignalInput
from workflows.position.models import ManagementAnswer

if TYPE_CHECKING:
    from activities.llm_pacing import LlmCallPacer
    from activities.raw_answers import RawAnswers

TRIGGER_SOURCE = "monitoring-worker"
MAX_RETRY_AFTER = timedelta(minutes=5)
_HEARTBEAT_EVERY = 2.0
# A real answer is a few KB (2,000 tokens at most); a megabyte is already far past any of them.
MAX_ANSWER_BYTES = 1024 * 1024
# Error text kept in a message (after redaction).
MAX_ERROR_DETAIL = 200

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
        # Not cut here: the message is redacted before it is cut (LlmProxy._error).
        raise bad(f"success is not true ({str(detail) if detail else 'no error message'})")
    data = body.get("data")
    if not isinstance(data, dict):
        raise bad("missing data")
    return data


def answer_parts(
    body: dict[str, Any], data: dict[str, Any], bad: Callable[[str], ApplicationError], clean: AnswerHygiene
) -> AnswerParts:
    """Confidence (0..100), reasoning (non-empty) and the metadata, or `bad(why)`; text cleaned,
    masked and bounded by `clean`, whose notes the reasoning carries."""
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
    if raw is not None and not isinstance(raw, str):
        try:
            raw = json.dumps(raw, ensure_ascii=False)
        except ValueError:  # nesting too deep to write back
            raw = None
    return AnswerParts(
        confidence=float(confidence),
        reasoning=clean.text(reasoning.strip(), "reasoning", MAX_REASONING_CHARS),
        raw_ai_response=clean.raw(raw) if raw is not None else None,
        tokens_used=clean.tokens(tokens),
        model_name=clean.text(model, "modelName", MAX_MODEL_NAME_CHARS) if isinstance(model, str) else None,
    )


def answer_levels(
    data: dict[str, Any], field: str, bad: Callable[[str], ApplicationError], clean: AnswerHygiene
) -> dict[str, Any] | None:
    """The answer's levels (`keyLevels`, `actionDetails`) cleaned; too many targets is a bad answer."""
    try:
        return clean.levels(data.get(field), field)
    except TooLarge as exc:
        raise bad(str(exc)) from None


def with_notes(parts: AnswerParts, clean: AnswerHygiene) -> dict[str, Any]:
    """The parts as keyword arguments, the reasoning carrying every note of the answer's cleaning."""
    return {**asdict(parts), "reasoning": clean.annotated(parts.reasoning)}


def parse_answer(
    body: Any, latency_ms: int, clean: AnswerHygiene | None = None, reference_price: Any = None
) -> Analysis:
    """The contract's success envelope, or a BadAnswer: never a silent `continue`. An `enter_trade`
    whose levels make no trade (activities/trade_levels.py; `reference_price` stands in for a
    missing entry) is a bad answer too."""
    clean = clean if clean is not None else AnswerHygiene()

    def bad(why: str) -> ApplicationError:
        return ApplicationError(f"llm-proxy gave a bad answer: {why}", type=BAD_ANSWER)

    data = envelope_data(body, bad)
    decision = normalise_proxy_decision(data.get("decision"))
    if decision is None:
        raise bad(f"unknown decision {str(data.get('decision'))[:50]!r}")
    parts = answer_parts(body, data, bad, clean)
    key_levels = answer_levels(data, "keyLevels", bad, clean)
    # On the levels as sent: 1e309 is an infinity here, not the null it is once cleaned.
    if decision == "enter_trade" and (why := incoherent_entry(data.get("keyLevels"), reference_price)):
        raise bad(f"enter_trade levels are no trade: {why}")
    trade_plan = clean.obj(data.get("tradePlan"), "tradePlan")
    indicators = clean.obj(data.get("technicalIndicators"), "technicalIndicators")
    return Analysis(
        decision=decision,
        key_levels=key_levels,
        trade_plan=trade_plan,
        technical_indicators=indicators,
        latency_ms=latency_ms,
        **with_notes(parts, clean),
    )


def check_identity(request: dict[str, Any], reply: Any, bad: Callable[[str], ApplicationError]) -> None:
    """The answer names what it answers: `data.signalId` is the request's; for `manage-position`,
    `data.positionId` is the request's (and `data.signalId`, when given). An answer for another
    request (e.g. a response left on a kept-alive connection by a faulty proxy or gateway) is bad."""
    params = request.get("params") or {}
    data = reply.get("data") if isinstance(reply, dict) else None
    if not isinstance(data, dict):
        return  # not an answer at all: the parse says why
    required = ("positionId",) if request.get("operation") == "manage-position" else ("signalId",)
    for key in ("signalId", "positionId"):
        expected = params.get(key)
        if expected is None or (key not in required and key not in data):
            continue
        got = data.get(key)
        if str(got).lower() != str(expected).lower():
            raise bad(f"answer names {key} {str(got)[:60]!r}, not this request's {expected!r}")


def _error_detail(content: bytes) -> str:
    """The error body's code and message (or its text), whole: redacted before it is cut."""
    try:
        body = json.loads(content)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return f"{error.get('code', '')} {error.get('message', '')}".strip()
    except (ValueError, RecursionError):
        pass
    return content[:MAX_ANSWER_BYTES].decode("utf-8", "replace").replace("\n", " ")


def model_call_error(redact: Redactor, message: str, type: str, **kwargs: Any) -> ApplicationError:
    """A failed model call (llm-proxy's or the `model` backend's) as history will show it: counted,
    its text redacted whole, then cut (a cut first could leave a piece of the key the masks miss)."""
    activity_metrics.llm_proxy_error(type)
    redacted = redact(message)
    if len(redacted) > MAX_ERROR_DETAIL + 200:
        redacted = redacted[: MAX_ERROR_DETAIL + 200] + "…"
    return ApplicationError(redacted, type=type, **kwargs)


class LlmProxy:
    """Holds the one httpx client of the worker (its key, its connection pool)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        api_key: str,
        pacer: LlmCallPacer | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        raw_answers: RawAnswers | None = None,
    ):
        self._raw_answers = raw_answers
        self._client = client
        self._url = url
        self._key = api_key
        self._pacer = pacer
        self._max_answer_bytes = max_answer_bytes
        self._redact = Redactor([api_key])

    def _error(self, message: str, type: str, **kwargs: Any) -> ApplicationError:
        return model_call_error(self._redact, message, type, **kwargs)

    @activity.defn(name=names.ANALYZE_SIGNAL)
    async def analyze_signal(self, input: AnalyzeSignalInput) -> Analysis:
        correlation = analysis_correlation(input.context.signal_id, input.analysis_number)
        body = build_request_body(input)
        parse = functools.partial(parse_answer, reference_price=body["params"]["price"])
        analysis = await self.ask(body, correlation, parse)
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
        request = asyncio.ensure_future(self._exchange(body, headers, extensions))
        try:
            # Heartbeats let Temporal notice a dead worker long before the call's own timeout,
            # and deliver cancellation when an operator cancels the workflow.
            while True:
                done, _ = await asyncio.wait({request}, timeout=_HEARTBEAT_EVERY)
                if done:
                    break
                activity.heartbeat()
            response, content = request.result()
        except asyncio.CancelledError:
            request.cancel()
            raise
        except AnswerTooLarge as exc:
            raise self._error(f"llm-proxy answer is too large: {exc}", BAD_ANSWER) from None
        except AnswerUnreadable as exc:
            raise self._error(f"llm-proxy answer is unreadable: {exc}", BAD_ANSWER) from None
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
        self._check_status(response, content, where)
        echoed = response.headers.get("x-correlation-id")
        if echoed is not None and echoed.strip() != correlation_id:
            await self._distrust(response)
            raise self._error(
                f"llm-proxy answer is for another request ({where}): x-correlation-id {echoed[:80]!r}", BAD_ANSWER
            )
        try:
            return json.loads(content), latency_ms
        except (ValueError, RecursionError):
            raise self._error(f"llm-proxy answer is not JSON ({where})", BAD_ANSWER) from None

    async def _exchange(
        self, body: dict[str, Any], headers: dict[str, str], extensions: dict[str, Any]
    ) -> tuple[httpx.Response, bytes]:
        """One request; its answer read within the bound; then no connection left holding bytes
        nobody asked for."""
        try:
            async with self._client.stream(
                "POST", self._url, json=body, headers=headers, extensions=extensions
            ) as response:
                content = await read_bounded(response, self._max_answer_bytes)
        finally:
            dropped = await drop_poisoned_connections(self._client)
            if dropped:
                activity.logger.warning("llm-proxy: %d connection(s) held unrequested bytes: closed", dropped)
        return response, content

    async def _distrust(self, response: httpx.Response) -> None:
        """The connection that delivered an answer to another request is not used again (its own
        request's answer may still be on its way)."""
        stream = response.extensions.get("network_stream")
        if stream is not None:
            await stream.aclose()
        await drop_poisoned_connections(self._client)

    async def ask(
        self, body: dict[str, Any], correlation_id: str, parse: Callable[[Any, int, AnswerHygiene], Parsed]
    ) -> Parsed:
        """One operation (`call`), its answer checked to be this request's and parsed from the
        200's body (a BadAnswer if it is not one), cleaned, tokens counted."""
        reply, latency_ms = await self.call(body, correlation_id)
        clean = AnswerHygiene(redact=self._redact)
        try:
            check_identity(body, reply, lambda why: ApplicationError(f"llm-proxy gave a bad answer: {why}"))
        except ApplicationError as exc:
            # No sweep here: _exchange's `finally` already swept the pool after this answer was read.
            raise self._error(str(exc), BAD_ANSWER) from None
        try:
            answer = parse(reply, latency_ms, clean)
        except ApplicationError as exc:
            raise self._error(str(exc), BAD_ANSWER) from None
        if clean.full_raw is not None and self._raw_answers is not None:
            # The whole answer for its row; history keeps the cut one (record_* moves it over).
            await self._raw_answers.park(correlation_id, clean.full_raw)
        if clean.notes:
            activity.logger.warning(
                "llm-proxy answer %s kept with changes: %s", correlation_id, "; ".join(dict.fromkeys(clean.notes))
            )
        tokens = answer.tokens_used
        if tokens:
            activity_metrics.tokens_used(tokens)
        return answer

    def _check_status(self, response: httpx.Response, content: bytes, where: str) -> None:
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
                f"llm-proxy rejected the request ({where}): {_error_detail(content)}",
                REQUEST_REJECTED,
                non_retryable=True,
            )
        if code >= 500:
            raise self._error(f"llm-proxy failed ({where}): {_error_detail(content)}", SERVER_ERROR)
        if code != 200:
            raise self._error(f"llm-proxy answered an unexpected status ({where})", BAD_ANSWER)


def new_http_client(timeout_seconds: float, max_connections: int) -> httpx.AsyncClient:
    # retries=0: Temporal's RetryPolicy is the only retry loop.
    transport = httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_connections=max_connections))
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        # Only what read_bounded decodes a piece at a time.
        headers={"Content-Type": "application/json", "Accept-Encoding": ACCEPT_ENCODING},
        follow_redirects=False,
    )
