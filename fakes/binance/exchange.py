"""Binance's side of the data: its clock and each stream's kline history, as REST serves it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from market.candle import k_to_row

from .recorded import Snapshot


class Clock:
    """Binance's clock. Runs `speed` times faster than the wall clock so a test sees many
    candles close in seconds (speed=60: a 1m candle lasts one real second). All emitted times
    (`E`, `t`, `T`, `/api/v3/time`) come from it, so they stay mutually consistent.

    With `follow_wall_clock` (the offline demo) it never runs ahead of the wall clock: it starts
    `start_ms` in the past, runs `speed` times faster until it has caught up, then at real time,
    so no candle is ever labelled with a time still to come (monitors refuse those)."""

    def __init__(self, speed: float = 1.0, start_ms: int | None = None, *, follow_wall_clock: bool = False) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.follow_wall_clock = follow_wall_clock
        self._start_ms = int(time.time() * 1000) if start_ms is None else start_ms
        self._t0 = time.monotonic()

    def _fast_ms(self) -> int:
        return self._start_ms + int((time.monotonic() - self._t0) * 1000 * self.speed)

    def now_ms(self) -> int:
        fast = self._fast_ms()
        return min(fast, int(time.time() * 1000)) if self.follow_wall_clock else fast

    def caught_up(self) -> bool:
        return self.follow_wall_clock and self._fast_ms() >= int(time.time() * 1000)

    def real_seconds(self, virtual_ms: float) -> float:
        return max(0.0, virtual_ms / 1000 / self.speed)

    async def sleep_until(self, virtual_ms: int) -> None:
        delay = self.real_seconds(virtual_ms - self._fast_ms())
        if self.follow_wall_clock:
            delay = max(delay, (virtual_ms - time.time() * 1000) / 1000)
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class LiveCandle:
    """A candle on the fake exchange while it trades and after: its values are the recorded
    snapshot it has reached. Not a data type of the product's (that is `market.candle.Candle`)."""

    symbol: str
    interval: str
    t: int
    T: int
    snap: Snapshot
    first_trade_id: int = -1

    def k(self, closed: bool) -> dict:
        s = self.snap
        traded = s.trades_seen and s.n > 0
        f = self.first_trade_id if traded else -1
        return {
            "t": self.t,
            "T": self.T,
            "s": self.symbol,
            "i": self.interval,
            "f": f,
            "L": f + s.n - 1 if traded else -1,
            "o": s.o,
            "c": s.c,
            "h": s.h,
            "l": s.l,
            "v": s.v,
            "n": s.n if traded else 0,
            "x": closed,
            "q": s.q,
            "V": s.V,
            "Q": s.Q,
            "B": "0",
        }

    def rest_row(self) -> list:
        return k_to_row(self.k(closed=False))


def stream_name(symbol: str, interval: str) -> str:
    return f"{symbol.lower()}@kline_{interval}"


def kline_frame(candle_k: dict, event_ms: int) -> dict:
    """A combined-stream envelope around a kline payload, field order as Binance sends it."""
    return {
        "stream": stream_name(candle_k["s"], candle_k["i"]),
        "data": {"e": "kline", "E": event_ms, "s": candle_k["s"], "k": candle_k},
    }


@dataclass
class Market:
    """Closed candles and the open one per (SYMBOL, interval). Candles removed by an exchange
    gap simply never exist, on REST as on the stream."""

    clock: Clock
    closed: dict[tuple[str, str], list[LiveCandle]] = field(default_factory=dict)
    open: dict[tuple[str, str], LiveCandle] = field(default_factory=dict)

    def knows(self, symbol: str) -> bool:
        return any(sym == symbol for sym, _ in (*self.closed, *self.open))

    def set_open(self, candle: LiveCandle) -> None:
        self.open[(candle.symbol, candle.interval)] = candle

    def close(self, candle: LiveCandle) -> None:
        key = (candle.symbol, candle.interval)
        history = self.closed.setdefault(key, [])
        if not history or history[-1].t < candle.t:
            history.append(candle)
        if self.open.get(key) is candle:
            del self.open[key]

    def klines(self, symbol: str, interval: str, start: int | None, end: int | None, limit: int) -> list[list]:
        """`GET /api/v3/klines` rows: oldest first, the still-open candle last if in range."""
        key = (symbol, interval)
        candles = list(self.closed.get(key, []))
        if key in self.open:
            candles.append(self.open[key])
        if start is not None:
            candles = [c for c in candles if c.t >= start]
        if end is not None:
            candles = [c for c in candles if c.t <= end]
        # Binance returns the first `limit` rows from startTime, or the last `limit` without it.
        candles = candles[:limit] if start is not None else candles[-limit:]
        return [c.rest_row() for c in candles]
