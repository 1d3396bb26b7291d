"""Queue-wide pacing of llm-proxy calls: each call takes the next free slot, `1 / rate` seconds
(plus a 5 % margin) after the previous one, from a row in PostgreSQL shared by every worker of the task queue.

Temporal's own queue rate limit (`max_task_queue_activities_per_second`) stays the main control:
it keeps the backlog in the task queue, not in sleeping activities. Its token bucket, though,
lets several calls through at once after an idle spell; the slots here smooth that burst, so
llm-proxy never sees more calls in a second than configured. The database clock is the only
clock, so workers on hosts with skewed clocks still agree."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg

log = logging.getLogger(__name__)

SPACING_MARGIN = 1.05

_TAKE_SLOT = """
INSERT INTO llm_call_pacing AS p (task_queue, next_call_at)
VALUES ($1, clock_timestamp() + make_interval(secs => $2))
ON CONFLICT (task_queue) DO UPDATE
    SET next_call_at = greatest(p.next_call_at, clock_timestamp()) + make_interval(secs => $2)
RETURNING extract(epoch FROM (p.next_call_at - make_interval(secs => $2)) - clock_timestamp())::float8
"""


class LlmCallPacer:
    def __init__(self, pool: asyncpg.Pool, task_queue: str, per_second: float):
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self._pool = pool
        self._queue = task_queue
        # 5 % above 1/rate: a late wake-up of one call (timer jitter, a busy event loop) must not
        # bring rate + 1 calls into one second; throughput stays within 5 % of the cap.
        self._gap = SPACING_MARGIN / per_second

    async def wait_turn(self, heartbeat: Callable[[], None], heartbeat_every: float) -> float:
        """Sleeps until this call's slot; returns the seconds waited. If PostgreSQL cannot be
        reached the call goes ahead (Temporal's queue limit still applies): pacing must never
        be the reason an analysis is lost."""
        try:
            wait = await self._pool.fetchval(_TAKE_SLOT, self._queue, self._gap, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("llm-proxy call pacing unavailable, calling unpaced: %s", type(exc).__name__)
            return 0.0
        waited = max(0.0, wait or 0.0)
        deadline = time.monotonic() + waited
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, heartbeat_every))
            heartbeat()
        return waited
