"""The step language: what the fake answers to one request (`Answer.*`, `Fault.*`, raw answers),
scripted per signal or returned by a default policy."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .manage_position import ManageAnswer
from .names import DEFAULT_TOKENS, FAKE_MODEL_NAME


@dataclass(frozen=True)
class DecisionAnswer:
    """A well-formed ``success: true`` answer (HTTP 200). Build it with :class:`Answer`.

    Key levels left as ``None`` are computed from the request's price (candle close, else
    ``params.price``): entry = price, stopLoss = price*0.98, takeProfit = [price*1.02, price*1.04].
    """

    decision: str
    confidence: Any  # normally an int 0-100; anything is sent as-is
    reasoning: str | None = None  # None -> "[fake llm-proxy] scripted <decision> ..."
    entry: float | None = None
    stop_loss: float | None = None
    take_profit: list[float] | None = None
    support: list[float] | None = None
    resistance: list[float] | None = None
    trade_plan: Mapping[str, Any] | None = None
    technical_indicators: Mapping[str, Any] | None = None
    tokens_used: int = DEFAULT_TOKENS
    model_name: str = FAKE_MODEL_NAME
    signal_id: str | None = None  # None -> echo the request's signalId
    data_overrides: Mapping[str, Any] | None = None  # merged last into "data"
    delay: float = 0.0  # seconds to wait before answering

    def with_delay(self, seconds: float) -> DecisionAnswer:
        return dataclasses.replace(self, delay=seconds)


@dataclass(frozen=True)
class RawAnswer:
    """Any HTTP answer: ``body`` is JSON-encoded unless it is ``str``/``bytes``."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] | None = None
    content_type: str | None = None  # default: application/json for JSON bodies, else text/plain
    delay: float = 0.0

    def with_delay(self, seconds: float) -> RawAnswer:
        return dataclasses.replace(self, delay=seconds)


@dataclass(frozen=True)
class FaultStep:
    """A failure mode. Build it with :class:`Fault`."""

    kind: str  # status | timeout | disconnect | truncated | not_json | success_false | bad_answer | slow_trickle
    status: int | None = None
    retry_after: int | float | str | None = None
    body: Any = None
    seconds: float = 0.0
    then: Step | None = None  # timeout / slow_trickle: what to answer afterwards (None -> default policy)
    bad_kind: str | None = None
    value: Any = None
    chunks: int = 10
    abort: bool = False
    delay: float = 0.0

    def with_delay(self, seconds: float) -> FaultStep:
        return dataclasses.replace(self, delay=seconds)


Step = DecisionAnswer | RawAnswer | FaultStep | ManageAnswer
DefaultPolicy = Callable[[dict[str, Any]], Step]


class Answer:
    """Constructors for well-formed answers (namespace; not instantiated)."""

    @staticmethod
    def decision(
        decision: str, confidence: Any = 60, *, reasoning: str | None = None, delay: float = 0.0, **kwargs: Any
    ) -> DecisionAnswer:
        """Any decision word (also the old synonyms, e.g. ``"continue_monitoring"``)."""
        return DecisionAnswer(decision=decision, confidence=confidence, reasoning=reasoning, delay=delay, **kwargs)

    @staticmethod
    def wait(confidence: Any = 60, **kwargs: Any) -> DecisionAnswer:
        return Answer.decision("wait", confidence, **kwargs)

    @staticmethod
    def enter(
        confidence: Any = 85,
        *,
        entry: float | None = None,
        stop_loss: float | None = None,
        take_profit: list[float] | None = None,
        **kwargs: Any,
    ) -> DecisionAnswer:
        return Answer.decision(
            "enter_trade", confidence, entry=entry, stop_loss=stop_loss, take_profit=take_profit, **kwargs
        )

    @staticmethod
    def abandon(confidence: Any = 80, **kwargs: Any) -> DecisionAnswer:
        """``bad_setup``: the monitor abandons the signal."""
        return Answer.decision("bad_setup", confidence, **kwargs)

    bad_setup = abandon

    @staticmethod
    def raw(
        body: Any,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        delay: float = 0.0,
    ) -> RawAnswer:
        return RawAnswer(status=status, body=body, headers=headers, content_type=content_type, delay=delay)

    @staticmethod
    def delay(seconds: float, answer: Step) -> Step:
        """``answer`` (any step, faults included) after waiting ``seconds``."""
        return dataclasses.replace(answer, delay=seconds)


BAD_ANSWER_KINDS = (
    "unknown_decision",  # decision "maybe_later" (or value=)
    "missing_decision",  # no "decision" key
    "confidence_out_of_range",  # confidence 150 (or value=, e.g. -5)
    "confidence_not_number",  # confidence "high" (or value=)
    "missing_confidence",  # no "confidence" key
    "empty_reasoning",  # reasoning "" (or value=, e.g. "   ")
    "missing_reasoning",  # no "reasoning" key
    "missing_data",  # success true, no "data" key
    "null_data",  # success true, "data": null
)


class Fault:
    """Constructors for failure modes (namespace; not instantiated)."""

    @staticmethod
    def status(
        status: int, *, retry_after: int | float | str | None = None, body: Any = None, delay: float = 0.0
    ) -> FaultStep:
        """An HTTP error. Default bodies: 500 -> the contract's ``INTERNAL_ERROR`` JSON;
        401/403 -> ``UNAUTHORIZED``/``FORBIDDEN`` JSON; 429 -> ``RATE_LIMITED`` JSON (+ ``Retry-After``
        when given); 502 -> HTML, 503 -> plain text, 504 -> HTML (gateway-style); others -> JSON."""
        return FaultStep(kind="status", status=status, retry_after=retry_after, body=body, delay=delay)

    @staticmethod
    def timeout(seconds: float, then: Step | None = None) -> FaultStep:
        """Wait ``seconds`` (pick more than the client waits), then answer ``then``/the default.
        If the client gives up first the handler is cancelled and nothing is answered."""
        return FaultStep(kind="timeout", seconds=seconds, then=then)

    @staticmethod
    def disconnect(*, reset: bool = False) -> FaultStep:
        """Close the connection without any response (``reset=True``: abort/RST instead of FIN)."""
        return FaultStep(kind="disconnect", abort=reset)

    @staticmethod
    def truncated(*, abort: bool = False, then: Step | None = None) -> FaultStep:
        """Half of a JSON answer. Default: a complete HTTP 200 whose body is half a JSON document
        (JSON parsing fails). ``abort=True``: Content-Length announces the whole body, half is sent,
        then the connection is closed (the HTTP client raises a transport/protocol error)."""
        return FaultStep(kind="truncated", abort=abort, then=then)

    @staticmethod
    def not_json(body: str | None = None, status: int = 200) -> FaultStep:
        """HTTP 200 (by default) with an HTML body."""
        return FaultStep(kind="not_json", body=body, status=status)

    @staticmethod
    def success_false(code: str = "INTERNAL_ERROR", message: str = "analysis failed", status: int = 200) -> FaultStep:
        """``{"success": false, "error": {...}}`` with HTTP 200 (by default)."""
        return FaultStep(
            kind="success_false", status=status, body={"success": False, "error": {"code": code, "message": message}}
        )

    @staticmethod
    def bad_answer(kind: str, value: Any = None) -> FaultStep:
        """HTTP 200, ``success: true``, but an invalid answer; ``kind`` in :data:`BAD_ANSWER_KINDS`."""
        if kind not in BAD_ANSWER_KINDS:
            raise ValueError(f"unknown bad_answer kind {kind!r}; expected one of {BAD_ANSWER_KINDS}")
        return FaultStep(kind="bad_answer", bad_kind=kind, value=value)

    @staticmethod
    def slow_trickle(seconds: float, *, chunks: int = 10, then: Step | None = None) -> FaultStep:
        """Send headers at once, then the body of ``then``/the default answer in ``chunks`` pieces
        spread over ``seconds`` (each read is quick, the whole response is slow)."""
        return FaultStep(kind="slow_trickle", seconds=seconds, chunks=max(1, chunks), then=then)
