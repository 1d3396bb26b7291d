"""Queue-wide pacing of llm-proxy calls (SIGNAL_MONITOR_LLM_QUEUE_MAX_PER_SECOND): Temporal's
queue rate limit lets a burst through after an idle spell; the pacing slots in PostgreSQL, taken
when the request is about to be written, make llm-proxy see at most the cap in any sliding 1 s
window across every worker, after idle spells and with jitter before the request is written."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
import uuid

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.llm_pacing import LlmCallPacer, slot_gap
from fakes.llm_proxy import Answer, FakeLlmProxy, always
from intake.starting import start_monitor
from tests.helpers.monitor import TEST_KEY, make_settings, running_worker
from tests.helpers.support import eventually, insert_signal, kline
from workflows.monitor.workflow import SignalMonitorWorkflow


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
    assert min(gaps) > 0.18, gaps  # 0.216 s (1.08 / 5), less the sleep's own jitter
    assert most_in_any_second(began) <= 5
    # 11 gaps of 0.216 s; a call that woke up too late for its slot (a loaded machine) took the
    # next free one, each such slot adding a gap.
    late = sum(p.late_slots for p in pacers)
    assert 2.0 < began[-1] - t0 < 1.0 + (11 + late) * slot_gap(5.0), (began[-1] - t0, late)


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
                    s = await h.query(SignalMonitorWorkflow.state)
                    assert s.counts.analysed == 1, s.counts

            await eventually(all_analysed, timeout=60)
        began = [r.monotonic for r in proxy.requests]
    assert len(began) == 10
    assert most_in_any_second(began) <= 2, sorted(b - min(began) for b in began)
    assert max(began) - min(began) >= 4.0  # (10 - 1) / 2 s, less the first slot's wait


def tightest_window(times: list[float], cap: int) -> float:
    """The shortest span holding cap + 1 arrivals: at least 1 s means no 1 s window holds more."""
    times = sorted(times)
    return min((times[i + cap] - times[i] for i in range(len(times) - cap)), default=float("inf"))


def test_slot_gap_allows_at_most_the_cap_in_any_second():
    assert slot_gap(4.0) * 4 > 1.0 and slot_gap(1.0) > 1.0
    assert slot_gap(2.5) == slot_gap(2.0)  # 3 calls in a second would exceed 2.5
    assert slot_gap(0.5) > 2.0


class JitterTransport(httpx.AsyncBaseTransport):
    """Real HTTP with a random delay before each request reaches the connection pool: what a
    slow connect, a TLS handshake or a pool wait does to a request on a busy host."""

    def __init__(self, inner: httpx.AsyncBaseTransport, rng: random.Random) -> None:
        self.inner, self.rng = inner, rng

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Mostly quick; one request in three is held 0.3-0.6 s (a slow connect).
        slow = self.rng.random() < 1 / 3
        await asyncio.sleep(self.rng.uniform(0.3, 0.6) if slow else self.rng.uniform(0, 0.02))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.slow  # ~20-30 s (tests/README: `pytest -m "not slow"` for a quick loop)
async def test_sliding_window_at_llm_proxy_two_workers_idle_spell_jitter(
    client, database_url, db, monkeypatch, temporal_address
):
    """Two workers on one queue capped at 3/s, one request in three held 0.3-0.6 s before it is
    written: a burst of 12 first analyses, an idle spell longer than httpx's keep-alive (fresh
    connections), then a burst of 12 candle analyses. At llm-proxy's arrival times no sliding 1 s
    window holds more than 3 calls, and every analysis is made."""
    rng = random.Random(16)

    def jittery_client(timeout_seconds: float, max_connections: int) -> httpx.AsyncClient:
        real = httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_connections=max_connections))
        return httpx.AsyncClient(transport=JitterTransport(real, rng), timeout=timeout_seconds)

    monkeypatch.setattr("workers.worker.new_http_client", jittery_client)
    cap = 3
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        proxy.default = always(Answer.wait(55))
        settings = make_settings(
            database_url, proxy.url, f"tq-{uuid.uuid4().hex[:10]}", llm_max_concurrent=12, llm_queue_max_per_second=cap
        )
        rows = [await insert_signal(db, interval="1m", max_reanalyses=10) for _ in range(12)]
        # A second connection, as a second worker process has (one client runs one worker per queue).
        other = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
        async with running_worker(client, settings), running_worker(other, settings):
            handles = [(await start_monitor(client, r.signal_id, settings.task_queue)).handle for r in rows]

            async def all_analysed(n: int) -> None:
                for h in handles:
                    s = await h.query(SignalMonitorWorkflow.state)
                    assert s.counts.analysed == n, s.counts

            await eventually(lambda: all_analysed(1), timeout=60)
            await asyncio.sleep(6.0)  # idle: Temporal's token bucket refills, keep-alives expire
            for row, h in zip(rows, handles, strict=True):
                await h.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
            await eventually(lambda: all_analysed(2), timeout=60)
        arrivals = [r.monotonic for r in proxy.requests]
    assert len(arrivals) == 24
    span = tightest_window(arrivals, cap)
    detail = " ".join(f"{t - min(arrivals):.2f}" for t in sorted(arrivals))
    assert most_in_any_second(arrivals) <= cap, detail
    assert span >= 1.0, detail
    print(f"\npacing 3/s, two workers, slow connects: tightest {cap + 1} arrivals span {span:.3f} s; {detail}")


@pytest.fixture(autouse=True)
def _quiet_httpx(caplog):
    caplog.set_level("WARNING", logger="httpx")
