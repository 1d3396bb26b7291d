"""Long fault cases, workers (`signal-monitor worker` processes, SIGKILL: no drain, like a host
that disappears):

- two workers on one task queue, one of them killed again and again (and started again) during a
  burst of closes to several monitors;
- the only worker killed while every monitor's llm-proxy call is in flight, several times; each
  time a new worker takes over and the retried call answers.

Each case ends with the three checks of tests/helpers/fault_checks.py."""

from __future__ import annotations

import asyncio
import random
import time
from functools import partial

import pytest

from fakes.llm_proxy import Answer, FakeLlmProxy, Step, always
from tests.helpers.fault_checks import assert_three_checks
from tests.helpers.monitor import TEST_KEY
from tests.helpers.processes import worker_process
from tests.helpers.restarts import activity_attempts, all_settled, expectation, start_settled, worker_env
from tests.helpers.support import eventually, insert_signal, kline
from workflows.monitor.workflow import SignalMonitorWorkflow

# Minutes each: left out of the default run; `pytest -m long tests/faults` or `python -m bench.faults`.
pytestmark = pytest.mark.long

MONITORS = 6
CLOSES = 12  # per monitor
CLOSE_EVERY = 1.2  # seconds between two closes of the burst


async def test_two_workers_one_killed_repeatedly_during_a_burst(client, temporal_address, database_url, db):
    rows = [await insert_signal(db, interval="1m", max_reanalyses=1000) for _ in range(MONITORS)]
    kills = 0
    rng = random.Random(6)
    async with FakeLlmProxy(api_key=TEST_KEY, default=always(Answer.wait(55)), answer_delay=0.4) as proxy:
        env = worker_env(temporal_address, database_url, proxy)
        queue = env["SIGNAL_MONITOR_TASK_QUEUE"]
        async with worker_process(env) as steady:
            handles = await start_settled(client, rows, queue)
            burst_over = asyncio.Event()

            async def victim() -> None:
                nonlocal kills
                while not burst_over.is_set() or kills < 3:
                    async with worker_process(env) as doomed:
                        await asyncio.sleep(rng.uniform(1.5, 4.0))
                        doomed.kill()
                        await doomed.proc.wait()
                        kills += 1

            killing = asyncio.create_task(victim())
            sent: dict[str, set[int]] = {row.signal_id: set() for row in rows}
            try:
                for n in range(1, CLOSES + 1):
                    for row, handle in zip(rows, handles, strict=False):
                        k = kline(row, n)
                        await handle.signal(SignalMonitorWorkflow.candle_closed, k)
                        sent[row.signal_id].add(k["t"])
                    await asyncio.sleep(CLOSE_EVERY)
            finally:
                burst_over.set()
                await killing
            assert steady.proc.returncode is None, steady.output()[-3000:]
            # Attempts cut by a kill time out (heartbeat 10 s, database activities 30 s) and retry.
            await all_settled(client, rows, 2, timeout=120, interval=1)
            expected = [await expectation(client, row.signal_id, sent[row.signal_id]) for row in rows]
            fig = await assert_three_checks(
                client,
                db,
                f"workers: 2 workers, one SIGKILLed {kills}x during a burst ({MONITORS} monitors x {CLOSES} closes)",
                expected,
                timeout=120,
            )
            retried = 0
            for handle in handles:
                for kind in ("analyze_signal", "record_analysis", "load_signal"):
                    retried += sum(1 for a in await activity_attempts(handle, kind) if a > 1)
            for handle in handles:
                await handle.terminate("fault case over")
    assert kills >= 3
    assert fig.closes_in == MONITORS * CLOSES
    print(f"\n{fig.summary()}; kills {kills}; activities retried after a kill {retried}")


ROUNDS = 3


async def test_worker_killed_during_llm_calls_new_worker_takes_over(client, temporal_address, database_url, db):
    rows = [await insert_signal(db, interval="1m", max_reanalyses=1000) for _ in range(4)]
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        for row in rows:
            steps: list[Step] = [Answer.wait(50)]
            for r in range(ROUNDS):
                # The first attempt hangs far beyond the kill; the retry on the new worker answers.
                steps += [Answer.delay(300, Answer.wait(51)), Answer.wait(60 + r)]
            proxy.script(row.signal_id, *steps)
        env = worker_env(temporal_address, database_url, proxy)
        queue = env["SIGNAL_MONITOR_TASK_QUEUE"]
        handles = []
        async with worker_process(env) as first:
            handles = await start_settled(client, rows, queue)
            first.kill()
        started = time.monotonic()
        for r in range(1, ROUNDS + 1):
            async with worker_process(env) as worker:
                before = len(proxy.requests)
                for row, handle in zip(rows, handles, strict=False):
                    await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, r))
                await eventually(partial(_received, proxy, before + len(rows)), timeout=60)
                worker.kill()  # every monitor's llm-proxy call is in flight
                await worker.proc.wait()
            async with worker_process(env):
                await all_settled(client, rows, 1 + r, timeout=90, interval=0.5)
        took = time.monotonic() - started
        async with worker_process(env):
            expected = [
                await expectation(client, row.signal_id, {kline(row, r)["t"] for r in range(1, ROUNDS + 1)})
                for row in rows
            ]
            fig = await assert_three_checks(
                client,
                db,
                f"workers: the only worker SIGKILLed during {len(rows)} llm-proxy calls, "
                f"{ROUNDS}x; a new one takes over",
                expected,
                timeout=60,
            )
        for row, handle in zip(rows, handles, strict=False):
            # Each round's call: the attempt cut by the kill, then the retry that answered.
            assert await activity_attempts(handle, "analyze_signal") == [1] + [2] * ROUNDS
            assert len(proxy.requests_for(row.signal_id)) == 1 + 2 * ROUNDS
            await handle.terminate("fault case over")
    assert fig.analyses_stored == len(rows) * (1 + ROUNDS)
    print(f"\n{fig.summary()}; {ROUNDS} kills, rounds took {took:.0f} s")


async def _received(proxy: FakeLlmProxy, n: int) -> None:
    assert len(proxy.requests) >= n
