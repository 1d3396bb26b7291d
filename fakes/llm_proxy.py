"""A local stand-in for the platform's llm-proxy ``analyze-signal`` endpoint.

See ``/work/shared/llm-proxy-contract.md`` for the contract it imitates. Three uses:

* **tests**: a scriptable fake with failure modes, recording what the monitor sent::

      async with FakeLlmProxy(api_key="k") as proxy:
          proxy.script("sig-1", Fault.status(429, retry_after=2), Answer.enter(confidence=85))
          ...  # point the code under test at proxy.url
          assert proxy.requests[0].headers["x-correlation-id"].startswith("sig-1")

* **the offline dev stack**: with no script, every answer comes from a deterministic policy
  (:func:`reanalysis_policy` by default) whose reasoning starts with ``"[fake llm-proxy] "`` and whose
  ``metadata.modelName`` is ``"fake-llm-proxy"``, so nobody mistakes it for a model.
* **benchmarks**: ``answer_delay=`` adds a fixed latency to every answer; :meth:`FakeLlmProxy.stats`
  reports calls, the maximum number of concurrent in-flight requests and calls per second.
* **like the production proxy**: ``store_rows=<database url>`` inserts its own ``signal_analyses`` row
  for every well-formed answer before answering (signal, trader, user, decision, confidence,
  reasoning, key levels, trade plan, indicators, raw answer, tokens, model; no candle, no analysis
  number), logs and ignores a failed insert (e.g. a NOT NULL ``key_levels`` when the answer has none)
  and answers anyway, as the real one does.

Standalone: ``python -m fakes.llm_proxy --port 8787 --api-key KEY [--delay S]``.

The ``Authorization`` header value is never logged nor recorded: a recorded request only says
whether it was ``authorized``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import hmac
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fakes.manage_position import MANAGE_OPERATION, MANAGE_REQUIRED, ManageAnswer, manage_envelope, manage_policy

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PATH",
    "FAKE_MODEL_NAME",
    "REASONING_PREFIX",
    "Answer",
    "DecisionAnswer",
    "FakeLlmProxy",
    "Fault",
    "FaultStep",
    "RawAnswer",
    "RecordedRequest",
    "Step",
    "always",
    "reanalysis_policy",
]

log = logging.getLogger("fakes.llm_proxy")

DEFAULT_PATH = "/functions/v1/llm-proxy"
DEFAULT_API_KEY = "fake-llm-proxy-key"
FAKE_MODEL_NAME = "fake-llm-proxy"
REASONING_PREFIX = "[fake llm-proxy] "
DEFAULT_TOKENS = 1100

# ---------------------------------------------------------------------------------------------
# Steps: what the fake answers to one request
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Default policies
# ---------------------------------------------------------------------------------------------


def _request_price(params: Mapping[str, Any]) -> float:
    candle = params.get("candle")
    for raw in ((candle or {}).get("close") if isinstance(candle, Mapping) else None, params.get("price")):
        try:
            if raw is not None and raw != "":
                return float(raw)
        except (TypeError, ValueError):
            pass
    return 100.0


def reanalysis_policy(params: dict[str, Any]) -> DecisionAnswer:
    """The default, deterministic policy (the dev demo is reproducible).

    ``reanalysis`` 0 -> ``wait`` 55; 1 -> ``wait`` 62; 2 and later -> ``enter_trade`` 78 with key
    levels from the candle close (entry = close, stopLoss = close*0.98, takeProfit = close*[1.02, 1.04]).
    """
    try:
        n = int(params.get("reanalysis") or 0)
    except (TypeError, ValueError):
        n = 0
    symbol = params.get("symbol", "?")
    price = _request_price(params)
    if n <= 0:
        return Answer.wait(
            55,
            reasoning=(
                f"{REASONING_PREFIX}reanalysis {n}: {symbol} at {price:g} has no confirmation yet; "
                "waiting for the next candle. Deterministic stand-in, not a model."
            ),
        )
    if n == 1:
        return Answer.wait(
            62,
            reasoning=(
                f"{REASONING_PREFIX}reanalysis {n}: {symbol} at {price:g} is improving but not confirmed; "
                "waiting one more candle. Deterministic stand-in, not a model."
            ),
        )
    return Answer.enter(
        78,
        reasoning=(
            f"{REASONING_PREFIX}reanalysis {n}: {symbol} setup confirmed at {price:g}; entering with "
            "stop 2% below and targets 2% and 4% above. Deterministic stand-in, not a model."
        ),
    )


def always(step: Step) -> DefaultPolicy:
    """A default policy answering ``step`` to every request (e.g. ``default=always(Fault.status(500))``)."""
    return lambda _params: step


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _r(x: float) -> float:
    return round(float(x), 8)


def _success_envelope(ans: DecisionAnswer, params: Mapping[str, Any], latency_ms: int) -> dict[str, Any]:
    price = _request_price(params)
    entry = _r(ans.entry if ans.entry is not None else price)
    stop = _r(ans.stop_loss if ans.stop_loss is not None else price * 0.98)
    tps = [_r(t) for t in ans.take_profit] if ans.take_profit is not None else [_r(price * 1.02), _r(price * 1.04)]
    support = list(ans.support) if ans.support is not None else [_r(price * 0.99)]
    resistance = list(ans.resistance) if ans.resistance is not None else [_r(price * 1.01)]
    risk = entry - stop
    rr = round((tps[-1] - entry) / risk, 2) if tps and risk > 0 else 0
    reasoning = (
        ans.reasoning
        if ans.reasoning is not None
        else (f"{REASONING_PREFIX}scripted {ans.decision} at confidence {ans.confidence}")
    )
    key_levels = {"entry": entry, "stopLoss": stop, "takeProfit": tps, "support": support, "resistance": resistance}
    trade_plan = (
        dict(ans.trade_plan)
        if ans.trade_plan is not None
        else {
            "setup": f"{REASONING_PREFIX}synthetic setup for {params.get('symbol', '?')}",
            "execution": f"enter at {entry:g}" if ans.decision in ("enter_trade", "enter") else "no entry yet",
            "invalidation": f"close below {stop:g}",
            "riskReward": rr,
        }
    )
    indicators = (
        dict(ans.technical_indicators)
        if ans.technical_indicators is not None
        else {"source": FAKE_MODEL_NAME, "rsi": 50.0, "trend": "neutral"}
    )
    raw_ai = json.dumps(
        {
            "decision": ans.decision,
            "confidence": ans.confidence,
            "reasoning": reasoning,
            "keyLevels": key_levels,
            "tradePlan": trade_plan,
        }
    )
    data: dict[str, Any] = {
        "signalId": ans.signal_id if ans.signal_id is not None else params.get("signalId"),
        "decision": ans.decision,
        "confidence": ans.confidence,
        "reasoning": reasoning,
        "keyLevels": key_levels,
        "tradePlan": trade_plan,
        "technicalIndicators": indicators,
        "metadata": {
            "analysisLatencyMs": latency_ms,
            "tokensUsed": ans.tokens_used,
            "modelName": ans.model_name,
            "rawAiResponse": raw_ai,
        },
    }
    if ans.data_overrides:
        data.update(ans.data_overrides)
    return {"success": True, "data": data, "usage": {"total_tokens": ans.tokens_used}}


def _bad_envelope(kind: str, value: Any, params: Mapping[str, Any], latency_ms: int) -> dict[str, Any]:
    env = _success_envelope(Answer.wait(60), params, latency_ms)
    data = env["data"]
    if kind == "unknown_decision":
        data["decision"] = "maybe_later" if value is None else value
    elif kind == "missing_decision":
        del data["decision"]
    elif kind == "confidence_out_of_range":
        data["confidence"] = 150 if value is None else value
    elif kind == "confidence_not_number":
        data["confidence"] = "high" if value is None else value
    elif kind == "missing_confidence":
        del data["confidence"]
    elif kind == "empty_reasoning":
        data["reasoning"] = "" if value is None else value
    elif kind == "missing_reasoning":
        del data["reasoning"]
    elif kind == "missing_data":
        del env["data"]
    elif kind == "null_data":
        env["data"] = None
    return env


_GATEWAY_BODIES: dict[int, tuple[str, str]] = {
    502: (
        "text/html",
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>fake-gateway</center>\r\n"
        "</body>\r\n</html>\r\n",
    ),
    503: ("text/plain", "upstream connect error or disconnect/reset before headers. reset reason: overflow"),
    504: (
        "text/html",
        "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
        "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>fake-gateway</center>\r\n"
        "</body>\r\n</html>\r\n",
    ),
}

_STATUS_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
}


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": _STATUS_ERROR_CODES.get(status, f"HTTP_{status}"), "message": message}}


@dataclass
class _Rendered:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def _encode(body: Any, content_type: str | None) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, content_type or "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), content_type or "text/plain"
    return json.dumps(body).encode(), content_type or "application/json"


# ---------------------------------------------------------------------------------------------
# Recorded requests
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request the fake received. ``headers`` has lower-case names and never contains
    ``authorization``; ``authorized`` says whether its bearer key was the configured one."""

    method: str
    path: str
    headers: dict[str, str]
    authorized: bool
    body: Any  # parsed JSON, or None when it was not JSON
    body_text: str | None  # the raw text when the body was not JSON, else None
    received_at: datetime  # UTC
    monotonic: float
    status: int | None = None  # HTTP status answered; None for a disconnect / client gone
    outcome: str = "pending"  # answered | rejected | disconnect | truncated | client_gone | stopped
    step: Step | None = None  # what was answered (None for auth/validation rejections)
    completed_monotonic: float | None = None

    @property
    def params(self) -> dict[str, Any]:
        if isinstance(self.body, dict) and isinstance(self.body.get("params"), dict):
            return self.body["params"]
        return {}

    @property
    def signal_id(self) -> Any:
        return self.params.get("signalId")

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get("x-correlation-id")

    @property
    def trigger_source(self) -> str | None:
        return self.headers.get("x-trigger-source")


class _Stopping(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class FakeLlmProxy:
    """Local aiohttp stand-in for llm-proxy ``analyze-signal``.

    ``async with FakeLlmProxy(api_key="k") as proxy: ... proxy.url ...`` or ``await proxy.start()`` /
    ``await proxy.stop()``. ``port=0`` picks a free port (``proxy.port`` tells which); a later
    ``start()`` after ``stop()`` rebinds the same port, so an outage can be simulated.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = DEFAULT_PATH,
        default: DefaultPolicy = reanalysis_policy,
        answer_delay: float = 0.0,
        shutdown_timeout: float = 2.0,
        backlog: int = 1024,
        store_rows: str | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string")
        self._api_key = api_key
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self.path = path if path.startswith("/") else "/" + path
        self.default: DefaultPolicy = default
        self.answer_delay = answer_delay
        self._shutdown_timeout = shutdown_timeout
        self._backlog = backlog  # benchmarks open hundreds of connections at once
        self._store_rows_dsn = store_rows
        self._store_pool: Any = None
        self.rows_stored = 0
        self.row_store_failures: list[str] = []
        self._scripts: dict[Any, collections.deque[Step]] = {}
        # manage-position: its own queues (by signalId) and default policy
        self._position_scripts: dict[Any, collections.deque[Step]] = {}
        self.manage_default: DefaultPolicy = manage_policy
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._new_request: asyncio.Event | None = None
        self.requests: list[RecordedRequest] = []
        self.reset_stats()

    def __repr__(self) -> str:  # never shows the key
        return f"<FakeLlmProxy url={self.url if self.port else None!r} calls={self.calls}>"

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeLlmProxy is not started")
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeLlmProxy is not started")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeLlmProxy:
        if self._runner is not None:
            raise RuntimeError("FakeLlmProxy already started")
        self._stopping = asyncio.Event()
        self._new_request = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", self.path, self._handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        # after a stop(), start() again binds the same port, so proxy.url stays valid (outage tests)
        site = web.TCPSite(
            runner, self.host, self.port if self.port is not None else self._requested_port, backlog=self._backlog
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        if self._store_rows_dsn and self._store_pool is None:
            import asyncpg

            self._store_pool = await asyncpg.create_pool(self._store_rows_dsn, min_size=1, max_size=4)
        log.info("fake llm-proxy listening on %s", self.url)
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()  # wakes every sleeping handler
        await runner.cleanup()
        pool, self._store_pool = self._store_pool, None
        if pool is not None:
            await pool.close()
        log.info("fake llm-proxy stopped (%s)", self.stats())

    async def __aenter__(self) -> FakeLlmProxy:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- scripting ------------------------------------------------------------------------------

    def script(self, signal_id: Any, *steps: Step) -> FakeLlmProxy:
        """Queue ``steps`` for requests whose ``params.signalId == signal_id`` (None: any signal).
        Steps are consumed one per request, in order; a signal's own queue wins over the None queue;
        with both empty the default policy answers. Calls accumulate."""
        for s in steps:
            if not isinstance(s, (DecisionAnswer, RawAnswer, FaultStep)):
                raise TypeError(f"not a step: {s!r} (use Answer.* or Fault.*)")
        self._scripts.setdefault(signal_id, collections.deque()).extend(steps)
        return self

    def script_position(self, signal_id: Any, *steps: Step) -> FakeLlmProxy:
        """Like :meth:`script`, for ``manage-position`` requests (``ManageAnswer.*`` or ``Fault.*``)."""
        for s in steps:
            if not isinstance(s, (ManageAnswer, RawAnswer, FaultStep)):
                raise TypeError(f"not a manage-position step: {s!r} (use ManageAnswer.* or Fault.*)")
        self._position_scripts.setdefault(signal_id, collections.deque()).extend(steps)
        return self

    def pending(self, signal_id: Any = ...) -> int:
        """Number of scripted steps not consumed yet (for one key, or all)."""
        if signal_id is ...:
            return sum(len(q) for q in self._scripts.values())
        return len(self._scripts.get(signal_id, ()))

    def clear_script(self) -> None:
        self._scripts.clear()

    def _next_step(self, params: dict[str, Any], operation: str = "analyze-signal") -> Step:
        sid = params.get("signalId")
        manage = operation == MANAGE_OPERATION
        scripts = self._position_scripts if manage else self._scripts
        for key in (sid, None):
            try:
                q = scripts.get(key)
            except TypeError:  # unhashable signalId
                continue
            if q:
                return q.popleft()
        return self.manage_default(params) if manage else self.default(params)

    # -- stats & inspection ----------------------------------------------------------------------

    def reset_stats(self) -> None:
        """Zero the counters (not ``requests`` nor the script); e.g. after a benchmark warm-up."""
        self.calls = 0  # requests received at the path (any method, any key)
        self.completed = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.status_counts: collections.Counter[int] = collections.Counter()
        self.outcome_counts: collections.Counter[str] = collections.Counter()
        self._first_start: float | None = None
        self._last_end: float | None = None

    def reset(self) -> None:
        """Forget requests, script and counters."""
        self.requests.clear()
        self.clear_script()
        self.reset_stats()

    @property
    def disconnects(self) -> int:
        return self.outcome_counts["disconnect"]

    @property
    def calls_per_second(self) -> float:
        """Completed calls / (last completion - first arrival) since the last reset_stats()."""
        if self._first_start is None or self._last_end is None:
            return 0.0
        span = self._last_end - self._first_start
        return self.completed / span if span > 0 else 0.0

    def stats(self) -> dict[str, Any]:
        span = (
            self._last_end - self._first_start if self._first_start is not None and self._last_end is not None else 0.0
        )
        return {
            "calls": self.calls,
            "completed": self.completed,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "status_counts": dict(self.status_counts),
            "outcome_counts": dict(self.outcome_counts),
            "elapsed_s": round(span, 6),
            "calls_per_second": round(self.calls_per_second, 3),
        }

    def requests_for(self, signal_id: Any) -> list[RecordedRequest]:
        return [r for r in self.requests if r.signal_id == signal_id]

    async def wait_for_requests(self, n: int, timeout: float = 5.0, signal_id: Any = ...) -> list[RecordedRequest]:
        """Wait until at least ``n`` requests (for ``signal_id`` if given) were received."""
        assert self._new_request is not None, "not started"

        def matching() -> list[RecordedRequest]:
            return self.requests if signal_id is ... else self.requests_for(signal_id)

        async def _wait() -> None:
            while len(matching()) < n:
                # read on every round: a restart (stop, start) replaces the event
                new_request = self._new_request
                assert new_request is not None
                new_request.clear()
                await new_request.wait()

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"expected {n} requests within {timeout}s, got {len(matching())}") from None
        return matching()

    # -- request handling ------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise _Stopping()

    def _authorized(self, request: web.Request) -> bool:
        value = request.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self._api_key.encode())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        self.calls += 1
        if self._first_start is None:
            self._first_start = now
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            k = k.lower()
            if k == "authorization":
                continue
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=headers,
            authorized=self._authorized(request),
            body=None,
            body_text=None,
            received_at=datetime.now(UTC),
            monotonic=now,
        )
        self.requests.append(rec)
        try:
            raw = await request.read()
            try:
                rec.body = json.loads(raw) if raw else None
            except ValueError:
                rec.body_text = raw.decode("utf-8", "replace")
            assert self._new_request is not None
            self._new_request.set()
            return await self._respond(request, rec)
        except _Stopping:
            rec.outcome = "stopped"
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        except asyncio.CancelledError:
            rec.outcome = "client_gone"
            raise
        finally:
            self.in_flight -= 1
            rec.completed_monotonic = self._last_end = time.monotonic()
            self.completed += 1
            self.outcome_counts[rec.outcome] += 1
            if rec.status is not None:
                self.status_counts[rec.status] += 1
            log.debug(
                "fake llm-proxy %s %s signal=%s -> %s (%s)",
                rec.method,
                rec.path,
                rec.signal_id,
                rec.status,
                rec.outcome,
            )

    def _reply(self, rec: RecordedRequest, rendered: _Rendered, outcome: str = "answered") -> web.Response:
        rec.status, rec.outcome = rendered.status, outcome
        return web.Response(
            status=rendered.status, body=rendered.body, content_type=rendered.content_type, headers=rendered.headers
        )

    async def _respond(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        if request.method != "POST":
            rec.outcome = "rejected"
            return self._reply(
                rec,
                _Rendered(405, *_encode(_error_body(405, "Method not allowed"), None), headers={"Allow": "POST"}),
                "rejected",
            )
        if not rec.authorized:
            return self._reply(
                rec, _Rendered(401, *_encode(_error_body(401, "Invalid or missing API key"), None)), "rejected"
            )
        body = rec.body
        problem = None
        if not isinstance(body, dict):
            problem = "Request body must be a JSON object"
        elif body.get("operation") not in ("analyze-signal", MANAGE_OPERATION):
            problem = f"Unknown operation: {body.get('operation')!r}"
        elif not isinstance(body.get("params"), dict):
            problem = "Missing params"
        else:
            required = MANAGE_REQUIRED if body["operation"] == MANAGE_OPERATION else ("signalId", "symbol", "strategy")
            missing = [k for k in required if body["params"].get(k) in (None, "")]
            if missing:
                problem = f"Missing required parameters: {', '.join(missing)}"
        if problem:
            return self._reply(rec, _Rendered(500, *_encode(_error_body(500, problem), None)), "rejected")

        params = body["params"]
        default = self.manage_default if body["operation"] == MANAGE_OPERATION else self.default
        step = self._next_step(params, body["operation"])
        rec.step = step
        started = time.monotonic()
        await self._sleep(self.answer_delay)
        for _ in range(10):  # follow timeout/trickle "then" chains; bounded
            await self._sleep(step.delay)
            if isinstance(step, FaultStep) and step.kind == "timeout":
                await self._sleep(step.seconds)
                step = step.then if step.then is not None else default(params)
                continue
            break
        else:
            raise RuntimeError("fake llm-proxy: too many nested timeout steps")

        if isinstance(step, FaultStep) and step.kind == "disconnect":
            rec.outcome = "disconnect"
            if request.transport is not None:
                if step.abort:
                    request.transport.abort()
                else:
                    request.transport.close()
            return web.Response(status=200)  # never sent: the transport is closed

        if isinstance(step, FaultStep) and step.kind in ("truncated", "slow_trickle"):
            inner = step.then if step.then is not None else default(params)
            if isinstance(inner, FaultStep) and inner.kind in ("timeout", "disconnect", "truncated", "slow_trickle"):
                raise RuntimeError(f"fake llm-proxy: cannot {step.kind} a {inner.kind} step")
            if step.kind == "slow_trickle":
                rendered = self._render(inner, params, started)
                return await self._trickle(request, rec, rendered, step.seconds, step.chunks)
            rendered = self._render(inner, params, started)
            half = rendered.body[: max(1, len(rendered.body) // 2)]
            if not step.abort:
                return self._reply(
                    rec, _Rendered(rendered.status, half, rendered.content_type, rendered.headers), "truncated"
                )
            rec.status, rec.outcome = rendered.status, "truncated"
            resp = web.StreamResponse(status=rendered.status, headers=rendered.headers)
            resp.content_type = rendered.content_type
            resp.content_length = len(rendered.body)
            await resp.prepare(request)
            await resp.write(half)
            await asyncio.sleep(0.01)  # let the half go out before the close
            if request.transport is not None:
                request.transport.close()
            return resp

        rendered = self._render(step, params, started)
        if self._store_pool is not None and isinstance(step, DecisionAnswer):
            await self._store_row(params, rendered.body)
        return self._reply(rec, rendered)

    async def _store_row(self, params: Mapping[str, Any], body: bytes) -> None:
        """The production proxy's own insert (through PostgREST, with the service role): every
        value as the answer has it, a missing one as NULL; a failure is logged, never answered."""
        data = json.loads(body).get("data") or {}
        raw_meta = data.get("metadata")
        meta = raw_meta if isinstance(raw_meta, dict) else {}

        def as_json(value: Any) -> str | None:
            return None if value is None else json.dumps(value)

        try:
            await self._store_pool.execute(
                """INSERT INTO signal_analyses (signal_id, trader_id, user_id, decision, confidence, reasoning,
                       key_levels, trade_plan, technical_indicators, raw_ai_response, analysis_latency_ms,
                       gemini_tokens_used, model_name)
                   VALUES ($1::text::uuid, $2::text::uuid, $3::text::uuid, $4, $5::text::numeric, $6,
                           $7::text::jsonb, $8::text::jsonb, $9::text::jsonb, $10, $11, $12, $13)""",
                str(params.get("signalId")),
                None if params.get("traderId") is None else str(params["traderId"]),
                None if params.get("userId") is None else str(params["userId"]),
                data.get("decision"),
                None if data.get("confidence") is None else str(data["confidence"]),
                data.get("reasoning"),
                as_json(data.get("keyLevels")),
                as_json(data.get("tradePlan")),
                as_json(data.get("technicalIndicators")),
                meta.get("rawAiResponse") if isinstance(meta.get("rawAiResponse"), str) else None,
                meta.get("analysisLatencyMs") if isinstance(meta.get("analysisLatencyMs"), int) else None,
                meta.get("tokensUsed") if isinstance(meta.get("tokensUsed"), int) else None,
                meta.get("modelName") if isinstance(meta.get("modelName"), str) else None,
            )
            self.rows_stored += 1
        except Exception as exc:  # the real proxy logs a failed insert and answers anyway
            self.row_store_failures.append(f"{type(exc).__name__}: {exc}")
            log.warning("fake llm-proxy: failed to store analysis: %s: %s", type(exc).__name__, exc)

    async def _trickle(
        self, request: web.Request, rec: RecordedRequest, rendered: _Rendered, seconds: float, chunks: int
    ) -> web.StreamResponse:
        rec.status, rec.outcome = rendered.status, "answered"
        resp = web.StreamResponse(status=rendered.status, headers=rendered.headers)
        resp.content_type = rendered.content_type
        resp.content_length = len(rendered.body)
        await resp.prepare(request)
        data = rendered.body
        size = max(1, -(-len(data) // chunks))
        pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        pause = seconds / max(1, len(pieces))
        for piece in pieces:
            await self._sleep(pause)
            await resp.write(piece)
        await resp.write_eof()
        return resp

    def _render(self, step: Step, params: dict[str, Any], started: float) -> _Rendered:
        latency_ms = int((time.monotonic() - started) * 1000)
        if isinstance(step, DecisionAnswer):
            return _Rendered(200, *_encode(_success_envelope(step, params, latency_ms), None))
        if isinstance(step, ManageAnswer):
            return _Rendered(200, *_encode(manage_envelope(step, params, latency_ms), None))
        if isinstance(step, RawAnswer):
            return _Rendered(step.status, *_encode(step.body, step.content_type), headers=dict(step.headers or {}))
        if not isinstance(step, FaultStep):
            raise TypeError(f"fake llm-proxy: not a step: {step!r}")
        if step.kind == "status":
            status = step.status or 500
            headers: dict[str, str] = {}
            if step.retry_after is not None:
                headers["Retry-After"] = str(step.retry_after)
            if step.body is not None:
                return _Rendered(status, *_encode(step.body, None), headers=headers)
            if status in _GATEWAY_BODIES:
                ctype, text = _GATEWAY_BODIES[status]
                return _Rendered(status, text.encode(), ctype, headers)
            message = {
                500: "Analysis failed: upstream model error (fake llm-proxy)",
                401: "Invalid or missing API key",
                403: "Forbidden",
                429: "Rate limit exceeded",
            }.get(status, f"HTTP {status} (fake llm-proxy)")
            return _Rendered(status, *_encode(_error_body(status, message), None), headers=headers)
        if step.kind == "not_json":
            text = (
                step.body
                if step.body is not None
                else (
                    "<!DOCTYPE html><html><head><title>Welcome</title></head>"
                    "<body><h1>It works!</h1><p>fake llm-proxy: not JSON</p></body></html>"
                )
            )
            return _Rendered(step.status or 200, text.encode(), "text/html")
        if step.kind == "success_false":
            return _Rendered(step.status or 200, *_encode(step.body, None))
        if step.kind == "bad_answer":
            assert step.bad_kind is not None
            return _Rendered(200, *_encode(_bad_envelope(step.bad_kind, step.value, params, latency_ms), None))
        raise ValueError(f"fake llm-proxy: cannot render fault kind {step.kind!r}")


# ---------------------------------------------------------------------------------------------
# Standalone
# ---------------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    proxy = FakeLlmProxy(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        path=args.path,
        answer_delay=args.delay,
        store_rows=args.store_rows,
    )
    await proxy.start()
    print(f"fake llm-proxy (deterministic stand-in, NOT a model) listening on {proxy.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    try:
        await stop.wait()
    finally:
        await proxy.stop()
        print(f"fake llm-proxy stopped: {json.dumps(proxy.stats())}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fakes.llm_proxy", description="Deterministic local stand-in for llm-proxy analyze-signal."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    p.add_argument(
        "--api-key",
        default=os.environ.get("FAKE_LLM_PROXY_API_KEY"),
        help="bearer key to require (default: $FAKE_LLM_PROXY_API_KEY)",
    )
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before every answer")
    p.add_argument("--path", default=DEFAULT_PATH)
    p.add_argument(
        "--store-rows",
        metavar="DATABASE_URL",
        help="insert a signal_analyses row per answer, like the production proxy",
    )
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if not args.api_key:
        p.error("--api-key (or FAKE_LLM_PROXY_API_KEY) is required")
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:  # pragma: no cover
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
