"""3. llm-proxy pressure: a fake llm-proxy answering after 4 s, two worker processes sharing one
task queue, each capped at `SIGNAL_MONITOR_LLM_MAX_CONCURRENT` calls, the queue capped at
`SIGNAL_MONITOR_LLM_QUEUE_MAX_PER_SECOND`. M monitors start at once, so M first analyses queue up.

The fake proxy sees every call. Figures: the most calls in flight at once (cap: 2 x per-worker),
the most calls begun in any sliding 1 s window (cap: the queue rate), and throughput as the
makespan the caps allow over the makespan measured (first call begun -> last answered). The
caps allow the ideal schedule that honours both in every second: call i begins 1/rate after call
i-1 and not before call i-concurrency has been answered (a burst of `concurrency` calls at once
would break the per-second cap, so it is not "allowed").

Phase A: concurrency binds. Phase B (full run): the queue rate binds; run on a Temporal server
whose task queues have one partition, as recommended for the llm queue (a partitioned queue
splits its rate limit among partitions: see RESULTS.md); the full run also shows phase B on the
dev server's default partitions, for comparison."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass

import asyncpg

from bench import data
from bench.report import Report
from bench.stack import ONE_PARTITION, Stack, new_proxy, new_queue, second_server, start_monitor_worker, workers

ANSWER_SECONDS = 4.0


@dataclass
class Phase:
    name: str
    per_worker: int
    queue_rps: float
    monitors: int

    @property
    def concurrency_cap(self) -> int:
        return 2 * self.per_worker


@dataclass
class PhaseResult:
    phase: Phase
    max_in_flight: int
    max_in_1s: int
    throughput_ratio: float


def allowed_makespan(calls: int, concurrency: int, per_second: float, service: float) -> float:
    """The shortest makespan that honours both caps at every moment: call i begins 1/rate after
    call i-1 (never more than `rate` in any second) and not before call i-concurrency has ended."""
    starts: list[float] = []
    for i in range(calls):
        start = starts[-1] + 1.0 / per_second if starts else 0.0
        if i >= concurrency:
            start = max(start, starts[i - concurrency] + service)
        starts.append(start)
    return starts[-1] + service if starts else 0.0


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


async def run_phase(
    st: Stack, rep: Report, conn: asyncpg.Connection, trader: str, phase: Phase, where: str
) -> PhaseResult:
    proxy = new_proxy(delay=ANSWER_SECONDS)
    await proxy.start()
    try:
        queue = new_queue("llm")
        start = lambda: start_monitor_worker(  # noqa: E731
            st, queue, proxy=proxy, llm_max_concurrent=phase.per_worker, llm_queue_rps=phase.queue_rps
        )
        async with workers(start(), start()):
            sids = await data.new_signals(conn, trader, phase.monitors, data.symbol_for("llm"))
            await data.start_monitors(st.client, sids, queue)
            by_conc = phase.concurrency_cap / ANSWER_SECONDS
            expected = phase.monitors / min(by_conc, phase.queue_rps) + ANSWER_SECONDS
            await data.wait_analyses(conn, sids, 1, 3 * expected + 30, f"llm phase {phase.name}")
    finally:
        await proxy.stop()
    # (began, completed) of every completed request
    spans = [(r.monotonic, r.completed_monotonic) for r in proxy.requests if r.completed_monotonic]
    begun = sorted(began for began, _ in spans)
    service = sum(completed - began for began, completed in spans) / len(spans)
    n = len(spans)
    allowed = allowed_makespan(n, phase.concurrency_cap, phase.queue_rps, service)
    measured = max(completed for _, completed in spans) - begun[0]
    result = PhaseResult(phase, proxy.max_in_flight, max_in_window(begun, 1.0), allowed / measured)
    if os.environ.get("BENCH_DEBUG"):
        rep.say("  begun at: " + " ".join(f"{t - begun[0]:.2f}" for t in begun))
    p = phase.name
    rep.figure(
        f"phase {p}: caps",
        f"{phase.per_worker}/worker x 2 = {phase.concurrency_cap} concurrent, "
        f"{phase.queue_rps:g}/s on the queue; {n} calls; {where}",
    )
    rep.figure(f"phase {p}: max in flight", result.max_in_flight, detail=f"cap {phase.concurrency_cap}")
    rep.figure(
        f"phase {p}: max begun in any 1 s",
        result.max_in_1s,
        detail=f"cap {phase.queue_rps:g}/s; in any 10 s: {max_in_window(begun, 10.0)}",
    )
    rep.figure(
        f"phase {p}: makespan",
        f"{measured:.2f} s",
        detail=f"caps allow {allowed:.2f} s "
        f"(answer {service:.2f} s incl. HTTP); throughput ratio {result.throughput_ratio:.3f}",
    )
    return result


async def run(st: Stack, rep: Report, conn: asyncpg.Connection, trader: str, quick: bool) -> None:
    rep.say(f"\n== 3. llm-proxy pressure: {ANSWER_SECONDS:g} s answers, two workers ==")
    results = []
    phase_a = Phase("A", per_worker=3, queue_rps=4.0, monitors=12 if quick else 36)
    phase_b = Phase("B", per_worker=5, queue_rps=1.0, monitors=10 if quick else 24)
    async with second_server(st, ONE_PARTITION) as one:
        results.append(await run_phase(one, rep, conn, trader, phase_a, "1 partition"))
        results.append(await run_phase(one, rep, conn, trader, phase_b, "1 partition"))
    if not quick:
        b4 = Phase("B4", per_worker=5, queue_rps=1.0, monitors=24)
        b4_result = await run_phase(st, rep, conn, trader, b4, "dev server default partitions (4)")
        rep.say(
            f"  (B4 is for comparison only: a queue rate cap on a partitioned queue delivers "
            f"{b4_result.throughput_ratio:.2f} of what it allows)"
        )
    for r in results:
        rep.goal(f"llm_cap_max_concurrent_{r.phase.name}", r.max_in_flight, r.phase.concurrency_cap)
        rep.goal(f"llm_cap_max_per_second_{r.phase.name}", r.max_in_1s, r.phase.queue_rps)
        # "Within 10 % of what the caps allow", either way.
        rep.goal(f"llm_throughput_error_{r.phase.name}", abs(1 - r.throughput_ratio), 0.10)
