"""Binance's answers classified by their own code (ccxt's exception classes depend on the host
name and the message, so on a local exchange several codes arrive as a plain ExchangeError).

- `unknown`: the order may or may not exist (timeout, dropped connection, 5xx, -1006, -1007):
  look it up again once `recvWindow` has passed.
- `refused`: no retry can help (filters, insufficient balance, bad client id, auth, bad symbol).
- `duplicate`: -2010 "Duplicate order sent.": an open order has this id already: adopt it.
- `would_trigger`: a stop on the wrong side of the market.
- `not_found`: -2013/-2011.
- `clock`: -1021: resync the clock, then it is safe to send again (it never executed).
- `rate_limited`: 429/418, with the seconds of `Retry-After`.
- `retry`: anything else that a later attempt may pass."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["unknown", "refused", "duplicate", "would_trigger", "not_found", "clock", "rate_limited", "retry"]

REFUSED_CODES = {
    -1013,  # filter failure
    -1100,  # illegal characters (a bad client id)
    -1102,  # mandatory parameter missing
    -1106,  # parameter not required
    -1111,  # precision over the maximum
    -1116,  # invalid order type
    -1121,  # invalid symbol
    -2014,  # API-key format invalid
    -2015,  # invalid API-key, IP, or permissions
    -1022,  # signature invalid (a wrong secret: no retry fixes it)
}
# -1001 "Internal error; unable to process your request": the request may have been processed.
UNKNOWN_CODES = {-1001, -1006, -1007}
NOT_FOUND_CODES = {-2013, -2011}


@dataclass(frozen=True)
class Classified:
    kind: Kind
    code: int | None
    message: str
    retry_after: float | None = None

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}" if self.code is not None else self.message


def body_of(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        body = json.loads(text[start:])
    except ValueError:
        return None
    return body if isinstance(body, dict) and "code" in body else None


def classify(
    *,
    status: int | None,
    body: dict[str, Any] | None,
    error_name: str,
    text: str,
    retry_after: str | None,
) -> Classified:
    """`error_name`: the ccxt exception's class name (and its bases') for answers without a body."""
    code = body.get("code") if body else None
    code = code if isinstance(code, int) else None
    msg = str(body.get("msg", "")) if body else text
    if status in (418, 429) or code in (-1003, -1015):
        seconds = _seconds(retry_after)
        return Classified("rate_limited", code, msg, seconds if seconds is not None else 60.0)
    if code == -1021:
        return Classified("clock", code, msg)
    if code == -2010:
        if "Duplicate order sent" in msg:
            return Classified("duplicate", code, msg)
        if "would trigger immediately" in msg or "immediately match" in msg:
            return Classified("would_trigger", code, msg)
        return Classified("refused", code, msg)  # insufficient balance and other rejections
    if code in NOT_FOUND_CODES:
        return Classified("not_found", code, msg)
    if code in REFUSED_CODES:
        return Classified("refused", code, msg)
    if code in UNKNOWN_CODES or (status is not None and status >= 500):
        return Classified("unknown", code, msg)
    if body is None and any(n in error_name for n in ("RequestTimeout", "NetworkError", "ExchangeNotAvailable")):
        return Classified("unknown", None, text[:300])
    if body is None and "OrderNotFound" in error_name:
        return Classified("not_found", None, text[:300])
    return Classified("retry", code, msg[:300])


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
