"""Queue-wide pacing of llm-proxy calls (SIGNAL_MONITOR_LLM_QUEUE_MAX_PER_SECOND): Temporal's
queue rate limit lets a burst through after an idle spell; the pacing slots in PostgreSQL make
calls begin at least 1/rate apart across every worker, so llm-proxy never sees more in a second."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
import uuid

import asyncpg

from activities.llm_pacing import LlmCallPacer
from fakes.llm_proxy import Answer, FakeLlmProxy, always
from tests.monitor_harness import TEST_KEY, make_settings, running_worker
from tests.support import eventually, insert_signal
from workers.starting import start_monitor
from workflows.models import MonitorState


def most_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


async def test_slots_are_shared_by_every_worker_and_spaced(database_url):
    """Two workers (two pools) take 12 slots at once at 5 per second: each begins 0.2 s after
    the previous one, whichever worker it is."""
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=6) for _ in range(2)]
    queue = f"tq-pace-{uuid.uuid4().hex[:8]}-llm"
    try:
        pacers = [LlmCallPacer(pool, queue, 5.0) for pool in pools]
        began: list[float] = []

        async def call(pacer: LlmCallPacer) -> None:
            await pacer.wait_turn(lambda: None, 0.5)
            began.append(time.monotonic())

        t0 = time.monotonic()
        await asyncio.gather(*(call(pacers[n % 2]) for n in range(12)))
    finally:
        for pool in pools:
            await pool.close()
    began.sort()
    gaps = [b - a for a, b in itertools.pairwise(began)]
    # Slots are 0.21 s apart (0.2 plus the margin); a call's wake-up can be late by what a busy
    # machine delays a timer (0.05 s seen with both cores taken), which shortens the next gap.
    assert min(gaps) > 0.1, gaps
    assert sum(gaps) / len(gaps) > 0.2, gaps  # on average the full spacing: late wake-ups do not add up
    assert most_in_any_second(began) <= 5
    assert 2.0 < began[-1] - t0 < 3.5


async def test_a_burst_of_analyses_never_exceeds_the_queue_rate(client, database_url, db):
    """Ten monitors start at once on a worker allowed 10 concurrent calls and 2 per second on
    the queue: llm-proxy sees at most 2 calls begin in any second, and every analysis is made."""
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        proxy.default = always(Answer.wait(55))
        settings = make_settings(
            database_url, proxy.url, f"tq-{uuid.uuid4().hex[:10]}", llm_max_concurrent=10, llm_queue_max_per_second=2.0
        )
        rows = [await insert_signal(db, interval="1m") for _ in range(10)]
        async with running_worker(client, settings):
            handles = [(await start_monitor(client, r.signal_id, settings.task_queue)).handle for r in rows]

            async def all_analysed() -> None:
                for h in handles:
                    s = await h.query("state", result_type=MonitorState)
                    assert s.counts.analysed == 1, s.counts

            await eventually(all_analysed, timeout=60)
        began = [r.monotonic for r in proxy.requests]
    assert len(began) == 10
    assert most_in_any_second(began) <= 2, sorted(b - min(began) for b in began)
    assert max(began) - min(began) >= 4.0  # (10 - 1) / 2 s, less the first slot's wait
