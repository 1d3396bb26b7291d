"""From klines to deliveries. A close is `k.x is True` and nothing else; each
(symbol, interval, open time) is forwarded once, to every running monitor of exactly that
(symbol, interval). Also notices a close that never came (the next candle is well under way
and its predecessor was not seen closing) and asks REST for it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from market.intervals import INTERVAL_MS

from .dedup import SeenCloses
from .delivery import Close, Delivery
from .events import emit
from .frames import KlineEvent, StreamKey
from .monitors import MonitorDirectory
from .stats import BridgeStats

RequestBackfill = Callable[[set[StreamKey], str], None]


class CloseRouter:
    def __init__(
        self,
        directory: MonitorDirectory,
        delivery: Delivery,
        stats: BridgeStats,
        capacity: int,
        missing_close_grace: float,
    ) -> None:
        self.directory, self.delivery, self.stats = directory, delivery, stats
        self.seen = SeenCloses(capacity)
        self.high_water: dict[StreamKey, int] = {}  # newest open time forwarded per stream
        self.missing_close_grace = missing_close_grace
        self.request_backfill: RequestBackfill | None = None
        self._suspect: dict[StreamKey, int] = {}  # stream -> open time whose close is awaited
        self._sent_since: dict[StreamKey, int] = {}  # stream -> when this replica started sending it (ms)

    def on_kline(self, ev: KlineEvent, received_at: float | None = None, source: str = "ws") -> bool:
        """Returns True when the close was forwarded (new), False otherwise."""
        if not ev.closed:
            self.stats.kline_updates += 1
            self._check_missing(ev)
            return False
        if source == "ws":
            self.stats.closes_received += 1
        t = ev.t
        if not self.seen.add((ev.key[0], ev.key[1], t)):
            self.stats.duplicates_dropped += 1
            return False
        if t > self.high_water.get(ev.key, -1):
            self.high_water[ev.key] = t
        monitors = self.directory.monitors_of(ev.key)
        self.stats.closes_forwarded += 1
        self.stats.recent_forwards.append((ev.key[0], ev.key[1], t, source))
        if source == "rest":
            self.stats.backfilled += 1
        self.delivery.submit(Close(ev.key, t, ev.k, received_at or time.monotonic(), source), monitors)
        emit(
            "bridge.close",
            logging.DEBUG,
            symbol=ev.key[0],
            interval=ev.key[1],
            t=t,
            source=source,
            monitors=len(monitors),
        )
        return True

    def overdue(self, sent: list[StreamKey], now_ms: int, slack_ms: int) -> int:
        """How many of the streams sent here are late: no close (live or from REST) for two
        intervals plus `slack_ms` after the newest one, or after this replica began sending it.
        What the `CandleClosesNotArriving` alert watches: a stream can stay subscribed and
        still stop delivering (a silent exchange, a stuck connection)."""
        wanted = set(sent)
        for key in [k for k in self._sent_since if k not in wanted]:
            del self._sent_since[key]
        late = 0
        for key in wanted:
            iv = INTERVAL_MS.get(key[1])
            if not iv:
                continue  # 1M: a calendar month, not watched for lateness
            since = self._sent_since.setdefault(key, now_ms)
            newest = self.high_water.get(key)
            due = (newest + 2 * iv) if newest is not None else since + iv
            if now_ms > due + slack_ms:
                late += 1
        return late

    def _check_missing(self, ev: KlineEvent) -> None:
        """An update of candle t while the close of t - interval was not seen: after a grace
        (a late close may still come), fetch it from REST."""
        iv = INTERVAL_MS.get(ev.key[1])
        last = self.high_water.get(ev.key)
        if iv is None or last is None or self.request_backfill is None:
            return  # nothing known yet: (re)connect backfill covers that case
        expected = ev.t - iv
        if expected <= last or self._suspect.get(ev.key) == expected:
            return
        self._suspect[ev.key] = expected
        asyncio.get_running_loop().call_later(self.missing_close_grace, self._recheck, ev.key, expected)

    def _recheck(self, key: StreamKey, expected: int) -> None:
        if self.high_water.get(key, -1) >= expected or self.request_backfill is None:
            return
        self.stats.missing_closes_detected += 1
        emit("bridge.close_missing", logging.WARNING, symbol=key[0], interval=key[1], t=expected)
        self.request_backfill({key}, "missing-close")
