"""Binance WebSocket frames, parsed defensively: anything unexpected becomes `Malformed` with a
short reason (the caller counts and logs it, and keeps reading)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from market.intervals import is_valid_interval
from workflows.common.candles import Kline, is_valid_symbol

StreamKey = tuple[str, str]  # (SYMBOL, interval)


def stream_name(symbol: str, interval: str) -> str:
    """Binance stream names are lower case; the interval keeps its case (`1M` is a month)."""
    return f"{symbol.lower()}@kline_{interval}"


def stream_key(name: str) -> StreamKey:
    symbol, _, rest = name.partition("@kline_")
    return symbol.upper(), rest


@dataclass(frozen=True)
class KlineEvent:
    key: StreamKey
    k: dict  # Binance's `k` exactly as received: the `candle_closed` argument
    closed: bool
    event_ms: int | None

    @property
    def t(self) -> int:
        return self.k["t"]


@dataclass(frozen=True)
class ControlReply:
    id: int | None
    result: Any
    error: dict | None


@dataclass(frozen=True)
class ServerShutdown:
    event_ms: int | None


Frame = KlineEvent | ControlReply | ServerShutdown


class Malformed(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def parse_frame(text: str | bytes) -> Frame:
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("invalid_json", str(exc)[:80]) from None
    if not isinstance(msg, dict):
        raise Malformed("not_an_object")
    if ("id" in msg and ("result" in msg or "error" in msg)) or ("error" in msg and "data" not in msg):
        error = msg.get("error")
        if error is not None and not isinstance(error, dict):
            error = {"msg": str(error)}
        req_id = msg.get("id")
        return ControlReply(req_id if isinstance(req_id, int) else None, msg.get("result"), error)
    stream = None
    payload: Any = msg
    if "data" in msg:  # combined-stream envelope
        stream, payload = msg.get("stream"), msg["data"]
        if not isinstance(stream, str) or not isinstance(payload, dict):
            raise Malformed("bad_envelope")
    event = payload.get("e")
    if event == "serverShutdown":
        e_ms = payload.get("E")
        return ServerShutdown(e_ms if isinstance(e_ms, int) else None)
    if event != "kline":
        raise Malformed("unknown_event", str(event)[:40])
    return _kline(payload, stream)


def _kline(payload: dict, stream: str | None) -> KlineEvent:
    k = payload.get("k")
    if not isinstance(k, dict):
        raise Malformed("kline_without_k")
    try:
        kline = Kline.model_validate(k)
    except ValidationError as exc:
        fields = ",".join(str(e["loc"][0]) for e in exc.errors() if e.get("loc"))
        raise Malformed("kline_bad_fields", fields) from None
    if not is_valid_symbol(kline.s) or not is_valid_interval(kline.i):
        raise Malformed("kline_bad_stream", f"{kline.s} {kline.i}")
    if kline.T < kline.t:
        raise Malformed("kline_bad_times")
    if stream is not None and stream != stream_name(kline.s, kline.i):
        raise Malformed("kline_stream_mismatch", stream)
    if payload.get("s") not in (None, kline.s):
        raise Malformed("kline_symbol_mismatch")
    e_ms = payload.get("E")
    return KlineEvent((kline.s, kline.i), k, kline.x is True, e_ms if isinstance(e_ms, int) else None)
