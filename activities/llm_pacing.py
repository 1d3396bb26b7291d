"""Queue-wide pacing of llm-proxy calls (SIGNAL_MONITOR_LLM_QUEUE_MAX_PER_SECOND): no sliding
1 s window at llm-proxy sees more call arrivals than the cap, across every worker of the queue.

Temporal's own queue rate limit (`max_task_queue_activities_per_second`) stays the main control:
it keeps the backlog in the task queue, not in sleeping activities. Its token bucket, though,
lets several calls through at once after an idle spell. So each call also takes a slot from a
row in PostgreSQL shared by every worker (migration 004; the database clock is the only clock,
so workers on hosts with skewed clocks agree), and the invariant holds by construction:

- Slots are `(1 + WINDOW_MARGIN) / n` s apart, n = the cap rounded down (a window of 1 s holds at
  most floor(cap) calls, so 2.5/s allows 2 in any second): n + 1 slots span 1 + WINDOW_MARGIN s.
- The slot is taken when the request is about to be written, after the HTTP connection exists
  (`LlmProxy` calls `wait_turn` from httpcore's trace hook): connect time, TLS, the pool and the
  activity's own start-up come before the slot, not between the slot and the arrival.
- The request goes no earlier than its slot, and no later than SEND_TOLERANCE after it: a call
  that wakes up late (a busy event loop, a slow answer from PostgreSQL) gives its slot up and
  takes a new one. So any n + 1 requests leave at least 1 + WINDOW_MARGIN - SEND_TOLERANCE s
  apart; what is left of the margin covers the jitter from the wire to llm-proxy's receipt.

The cost is throughput: floor(cap) / (1 + WINDOW_MARGIN) calls per second at most."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

import asyncpg

log = logging.getLogger(__name__)

WINDOW_MARGIN = 0.08  # s: n + 1 slots span 1.08 s
SEND_TOLERANCE = 0.05  # s a request may leave after its slot; 0.03 s is left for the wire
MAX_LATE_ATTEMPTS = 20  # then the call goes (and is counted): pacing never loses an analysis

_TAKE_SLOT = """
INSERT INTO llm_call_pacing AS p (task_queue, next_call_at)
VALUES ($1, clock_timestamp() + make_interval(secs => $2))
ON CONFLICT (task_queue) DO UPDATE
    SET next_call_at = greatest(p.next_call_at, clock_timestamp()) + make_interval(secs => $2)
RETURNING extract(epoch FROM (p.next_call_at - make_interval(secs => $2)) - clock_timestamp())::float8
"""


def slot_gap(per_second: float) -> float:
    """Seconds between slots so that no window of 1 s holds more than `per_second` of them."""
    if per_second <= 0:
        raise ValueError("per_second must be positive")
    calls = math.floor(per_second) if per_second >= 1 else per_second
    return (1 + WINDOW_MARGIN) / calls


class LlmCallPacer:
    def __init__(self, pool: asyncpg.Pool, task_queue: str, per_second: float):
        self._pool = pool
        self._queue = task_queue
        self._gap = slot_gap(per_second)
        self.late_slots = 0  # slots given up because the call woke up too late for them
        self.unpaced = 0  # calls sent without a slot (PostgreSQL unreachable, or always late)

    async def wait_turn(self, heartbeat: Callable[[], None] | None = None, heartbeat_every: float = 2.0) -> float:
        """Sleeps until this call's slot; returns the seconds waited. Call it right before the
        request is written. If PostgreSQL cannot be reached the call goes ahead (Temporal's
        queue limit still applies): pacing must never be the reason an analysis is lost."""
        began = time.monotonic()
        for _ in range(MAX_LATE_ATTEMPTS):
            try:
                # The connection first: a pool wait or a new connection must not widen the
                # interval in which the slot is known to lie.
                async with self._pool.acquire(timeout=5) as conn:
                    asked = time.monotonic()
                    wait = await conn.fetchval(_TAKE_SLOT, self._queue, self._gap, timeout=5)
                    answered = time.monotonic()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.unpaced += 1
                log.warning("llm-proxy call pacing unavailable, calling unpaced: %s", type(exc).__name__)
                return time.monotonic() - began
            wait = wait or 0.0
            # The database read its clock somewhere between `asked` and `answered`: the slot is
            # at the earliest `asked + wait` and at the latest `answered + wait` in our clock.
            earliest, not_before = asked + wait, answered + wait
            while (left := not_before - time.monotonic()) > 0:
                await asyncio.sleep(min(left, heartbeat_every))
                if heartbeat is not None:
                    heartbeat()
            if time.monotonic() - earliest <= SEND_TOLERANCE:
                return time.monotonic() - began
            self.late_slots += 1
        self.unpaced += 1
        log.warning("llm-proxy call pacing: %d slots missed in a row, calling now", MAX_LATE_ATTEMPTS)
        return time.monotonic() - began
