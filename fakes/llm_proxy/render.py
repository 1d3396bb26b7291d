"""Rendering a step into the HTTP answer llm-proxy would give: its success envelope, its error
bodies, the gateways' HTML pages in front of it, and bad answers of every kind."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .manage_position import ManageAnswer, manage_envelope
from .names import FAKE_MODEL_NAME, REASONING_PREFIX
from .policies import request_price
from .steps import Answer, DecisionAnswer, FaultStep, RawAnswer, Step


def _r(x: float) -> float:
    return round(float(x), 8)


def _success_envelope(ans: DecisionAnswer, params: Mapping[str, Any], latency_ms: int) -> dict[str, Any]:
    price = request_price(params)
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


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": _STATUS_ERROR_CODES.get(status, f"HTTP_{status}"), "message": message}}


@dataclass
class Rendered:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def encode(body: Any, content_type: str | None) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, content_type or "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), content_type or "text/plain"
    return json.dumps(body).encode(), content_type or "application/json"


def render(step: Step, params: dict[str, Any], latency_ms: int) -> Rendered:
    if isinstance(step, DecisionAnswer):
        return Rendered(200, *encode(_success_envelope(step, params, latency_ms), None))
    if isinstance(step, ManageAnswer):
        return Rendered(200, *encode(manage_envelope(step, params, latency_ms), None))
    if isinstance(step, RawAnswer):
        return Rendered(step.status, *encode(step.body, step.content_type), headers=dict(step.headers or {}))
    if not isinstance(step, FaultStep):
        raise TypeError(f"fake llm-proxy: not a step: {step!r}")
    if step.kind == "status":
        status = step.status or 500
        headers: dict[str, str] = {}
        if step.retry_after is not None:
            headers["Retry-After"] = str(step.retry_after)
        if step.body is not None:
            return Rendered(status, *encode(step.body, None), headers=headers)
        if status in _GATEWAY_BODIES:
            ctype, text = _GATEWAY_BODIES[status]
            return Rendered(status, text.encode(), ctype, headers)
        message = {
            500: "Analysis failed: upstream model error (fake llm-proxy)",
            401: "Invalid or missing API key",
            403: "Forbidden",
            429: "Rate limit exceeded",
        }.get(status, f"HTTP {status} (fake llm-proxy)")
        return Rendered(status, *encode(error_body(status, message), None), headers=headers)
    if step.kind == "not_json":
        text = (
            step.body
            if step.body is not None
            else (
                "<!DOCTYPE html><html><head><title>Welcome</title></head>"
                "<body><h1>It works!</h1><p>fake llm-proxy: not JSON</p></body></html>"
            )
        )
        return Rendered(step.status or 200, text.encode(), "text/html")
    if step.kind == "success_false":
        return Rendered(step.status or 200, *encode(step.body, None))
    if step.kind == "bad_answer":
        assert step.bad_kind is not None
        return Rendered(200, *encode(_bad_envelope(step.bad_kind, step.value, params, latency_ms), None))
    raise ValueError(f"fake llm-proxy: cannot render fault kind {step.kind!r}")
