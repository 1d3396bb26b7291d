"""REST backfill (`GET /api/v3/klines`, httpx): after a (re)connect, a restart, a takeover or a
close that never came, forward every closed candle each stream missed, oldest first, at most
`MAX_BACKFILL_CLOSES` (a position checks its stop on each close, not only on the newest; a monitor
analyses the newest and records the others as skipped). A stream this replica has not sent yet
(new, or taken over from a replica that died or froze) gets the closes of the takeover window
(three times `STALE_STEPS` plus two ownership steps, shared mode) or the newest one: closes its monitors
already had are dropped by them as duplicates. The still-open last row (T >= Binance's server
time) is never forwarded; candles REST does not have either (an exchange outage) are logged as
gaps, never invented. 429/418 `Retry-After` pauses every REST call of the bridge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from market import rest
from market.candle import row_to_k
from market.intervals import INTERVAL_MS
from runtime.config import BridgeSettings
from runtime.lifecycle import Backoff
from workflows.common.candles import Kline

from .events import emit
from .frames import KlineEvent, StreamKey
from .ownership import STALE_STEPS
from .router import CloseRouter
from .stats import BridgeStats

# More missed closes than this (a long outage) are counted, not sent: a monitor would analyse only
# the newest anyway, and a position's stop check on an hour-old close changes nothing now.
MAX_BACKFILL_CLOSES = 100

T = TypeVar("T")


class Backfiller:
    def __init__(
        self, cfg: BridgeSettings, stats: BridgeStats, router: CloseRouter, http: httpx.AsyncClient | None = None
    ) -> None:
        self.cfg, self.stats, self.router = cfg, stats, router
        self.http = http or rest.rest_client(cfg.rest_url, cfg.rest_timeout)  # retries are ours, Retry-After aware
        self._sem = asyncio.Semaphore(cfg.rest_concurrency)
        self._paused_until = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._gaps_seen: dict[StreamKey, set[int]] = {}

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()

    def request(self, keys: Iterable[StreamKey], reason: str) -> None:
        """Fire-and-forget backfill (called from connection callbacks)."""
        keys = set(keys)
        if not keys:
            return
        task = asyncio.create_task(self.backfill(keys, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def backfill(self, keys: set[StreamKey], reason: str) -> int:
        before = {key: self.router.high_water.get(key) for key in keys}
        try:
            server_time = await self._rest(rest.server_time)
        except rest.KlinesError as exc:
            self.stats.rest_errors += 1
            emit("bridge.backfill_failed", logging.WARNING, reason=reason, streams=len(keys), error=repr(exc)[:200])
            return 0
        results = await asyncio.gather(
            *(self._one(key, server_time, before[key]) for key in sorted(keys)), return_exceptions=True
        )
        forwarded = sum(1 for r in results if r is True)
        errors = [r for r in results if isinstance(r, BaseException)]
        self.stats.rest_errors += len(errors)
        fields: dict[str, object] = {"reason": reason, "streams": len(keys), "forwarded": forwarded}
        fields["errors"] = len(errors)
        if errors:
            fields["first_error"] = repr(errors[0])[:200]
        emit("bridge.backfill", logging.INFO, **fields)
        return forwarded

    async def _one(self, key: StreamKey, server_time: int, before: int | None = None) -> bool:
        symbol, interval = key
        iv = INTERVAL_MS.get(interval)
        last = self.router.high_water.get(key)
        limit = 2
        window_start = None  # a stream this replica never sent: closes since here (takeover window)
        if last is None and iv and self.cfg.mode == "shared":
            # Three takeover times back: the freeze began before the fencing, and REST may answer
            # late. Closes the monitors already had come again as duplicates, which they drop.
            window_ms = int(3 * (STALE_STEPS + 2) * self.cfg.ownership_check_seconds * 1000)
            window_start = server_time - window_ms - iv
            limit = int(min(MAX_BACKFILL_CLOSES + 1, window_ms // iv + 3))
        if last is not None and iv:
            limit = int(min(1000, max(2, (server_time - last) // iv + 2)))
        self.stats.backfill_requests += 1
        rows = await self._rest(rest.klines_page, symbol, interval, limit=limit)
        valid: list[list] = []
        for row in rows:
            if not (isinstance(row, list) and len(row) >= 12 and isinstance(row[0], int) and isinstance(row[6], int)):
                self.stats.malformed("rest_row")
                continue
            valid.append(row)
        if last is not None and iv and valid:
            self._record_gaps(key, last, iv, valid)
        # The last row is the still-open candle while its T >= Binance's now: never a close.
        closed = [row for row in valid if row[6] < server_time]
        if not closed:
            return False
        newest = max(closed, key=lambda r: r[0])
        if last is not None:
            if newest[0] <= last:
                # Nothing left to forward. A newer close may have come over the WebSocket while
                # this request waited (a Retry-After pause): the misses it superseded are counted.
                if before is not None:
                    self.stats.backfill_missed_candles += sum(
                        1 for r in closed if before < r[0] < last and (symbol, interval, r[0]) not in self.router.seen
                    )
                return False
            missed = sorted((r for r in closed if r[0] > last), key=lambda r: r[0])
        elif window_start is not None:
            missed = sorted((r for r in closed if r[6] >= window_start), key=lambda r: r[0]) or [newest]
        else:
            missed = [newest]
        if len(missed) > MAX_BACKFILL_CLOSES:
            self.stats.backfill_missed_candles += len(missed) - MAX_BACKFILL_CLOSES
            missed = missed[-MAX_BACKFILL_CLOSES:]
        forwarded = False
        for row in missed:  # oldest first: each close in order, as the WebSocket would have sent them
            k = row_to_k(symbol, interval, row)
            try:
                Kline.model_validate(k)
            except ValidationError:
                self.stats.malformed("rest_row")
                continue
            forwarded = (
                self.router.on_kline(KlineEvent(key, k, True, None), time.monotonic(), source="rest") or forwarded
            )
        return forwarded

    def _record_gaps(self, key: StreamKey, last: int, iv: int, rows: list[list]) -> None:
        """Open times after `last` that REST skips although a later candle exists: the exchange
        itself has no such candle (an outage). Logged once each; nothing is made up for them."""
        present = {r[0] for r in rows}
        seen = self._gaps_seen.setdefault(key, set())
        start = max(last + iv, min(present))
        gaps = [t for t in range(start, max(present), iv) if t not in present and t not in seen]
        if gaps:
            seen.update(gaps)
            if len(seen) > 1000:  # bounded memory: old gaps cannot come up again
                for t in sorted(seen)[:-1000]:
                    seen.discard(t)
            self.stats.exchange_gaps += len(gaps)
            emit(
                "bridge.exchange_gap",
                logging.WARNING,
                symbol=key[0],
                interval=key[1],
                missing=len(gaps),
                first_t=gaps[0],
                last_t=gaps[-1],
            )

    async def _rest(self, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """One market/rest call, within the bridge's REST concurrency and its rate-limit pause:
        a 418/429 pauses every REST call for its Retry-After and tries again, a 5xx after a short
        backoff; anything else, or the last attempt's failure, is the caller's `KlinesError`."""
        server_errors = Backoff(1.0, 5.0, jitter=False)
        for attempt in range(1, self.cfg.rest_max_attempts + 1):
            async with self._sem:
                wait = self._paused_until - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    return await call(self.http, *args, **kwargs)
                except rest.KlinesError as exc:
                    failed = exc
            if failed.status in (418, 429):
                # Binance always sends Retry-After; when absent, be conservative.
                retry_after = 60.0 if failed.retry_after is None else failed.retry_after
                self.stats.rest_rate_limited += 1
                self._paused_until = max(self._paused_until, time.monotonic() + retry_after)
                emit(
                    "bridge.rest_rate_limited",
                    logging.WARNING,
                    status=failed.status,
                    retry_after_s=retry_after,
                    attempt=attempt,
                )
                continue
            if failed.status is not None and failed.status >= 500:
                await asyncio.sleep(server_errors.next_delay())
                continue
            raise failed
        raise rest.KlinesError(f"Binance REST failed after {self.cfg.rest_max_attempts} attempts")
