"""10. Against the same-work floor (issue 27): one close to N idle monitors, then to N
`SameWorkAnalysisWorkflow`s (bench/same_work_floor.py) doing the same external work per candle (an
`analyze-signal` call and one row), and the same for N open positions against N
`SameWorkPositionWorkflow`s (`manage-position` and one decision row). Same server, database and
proxy; rounds interleaved, the order alternating each round, so a busy neighbour slows both.

Figures per burst: first signal sent → every row stored (from the histories, as in section 2), and
the CPU seconds per candle the Temporal server, the worker, PostgreSQL and this process (the fake
proxy, the sender) spent from the first signal until every row was stored and the last workflow
task had time to finish. The goal line is the median of the rounds' stored ratios."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import psutil

from bench import burst, data, history, positions
from bench.report import Report, ratio
from bench.same_work_floor import (
    ANALYSE_ACTIVITY,
    ANALYSIS_WORKFLOW,
    MANAGE_ACTIVITY,
    POSITION_WORKFLOW,
    Owner,
)
from bench.stack import (
    Section,
    Stack,
    WorkerProcess,
    new_queue,
    start_monitor_worker,
    start_same_work_worker,
    workers,
)
from fakes.llm_proxy import ManageAnswer

ROUNDS = 3
SETTLE = 0.5  # seconds after the last row for the workflow task that follows it (CPU sample)
ROLES = ("server", "worker", "postgres", "bench")


class CpuMeter:
    """Process CPU seconds (user + system) of the parts a burst keeps busy."""

    def __init__(self, st: Stack) -> None:
        me = psutil.Process()
        self._me = me
        self._server = [p for p in me.children(recursive=True) if p.name().startswith("temporal")]
        workdir = str(st.workdir)
        self._pg_root = [p for p in psutil.process_iter(["name", "cmdline"]) if _is_postmaster(p.info, workdir)]

    def sample(self, worker: WorkerProcess) -> dict[str, float]:
        pg = [*self._pg_root, *(c for r in self._pg_root for c in _children(r))]
        return {
            "server": sum(_cpu(p) for p in self._server),
            "worker": _cpu(psutil.Process(worker.pid)),
            "postgres": sum(_cpu(p) for p in pg),
            "bench": _cpu(self._me),
        }


def _is_postmaster(info: dict, workdir: str) -> bool:
    return (info.get("name") or "").startswith("postgres") and any(workdir in a for a in info.get("cmdline") or [])


def _children(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.children()
    except psutil.Error:
        return []


def _cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


@dataclass
class Kind:
    """One side of the comparison: its workflows, the ids its rows carry, how to read its times."""

    label: str
    worker: WorkerProcess
    workflow_ids: list[str]
    row_ids: list[str]  # signal ids its rows carry
    start_activity: str
    end_activity: str
    stored: list[float] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)  # ms per candle, per round
    problems: int = 0
    candles: int = 0  # candles each of its workflows has stored a row for


async def _burst(
    st: Stack,
    meter: CpuMeter,
    kind: Kind,
    k: dict,
    wait_rows: Callable[[Kind, dict, float], Awaitable[object]],
    timeout: float,
) -> None:
    n = len(kind.workflow_ids)
    before = meter.sample(kind.worker)
    t0 = time.time()
    await data.send_closes(st.client, kind.workflow_ids, k)
    kind.candles += 1
    await wait_rows(kind, k, timeout)
    await asyncio.sleep(SETTLE)
    after = meter.sample(kind.worker)
    # The row is committed before the workflow task that records it completes (the monitor's
    # local activity): on a busy machine that task can still be pending here.
    await data.wait_idle(st.client, kind.workflow_ids, timeout, f"{kind.label} burst of {n} settling")
    timings = await history.timings_of(st.client, kind.workflow_ids, kind.start_activity, kind.end_activity)
    times = burst.collect(n, timings, t0, 0.0, 0)
    kind.stored.append(times.all_stored)
    kind.problems += times.problems
    kind.cpu.append({r: (after[r] - before[r]) / n * 1000 for r in ROLES})


async def _rounds(
    sec: Section,
    meter: CpuMeter,
    mon: Kind,
    flo: Kind,
    name: str,
    who: str,
    klines: Callable[[int], dict],
    wait_rows: Callable[[Kind, dict, float], Awaitable[object]],
    rounds: int,
    timeout: float,
    stored: str,
) -> float:
    """The interleaved rounds, then the monitor side's rows counted by `stored` (over its signal
    ids): each round stores one row per workflow, so any other count is work lost or done twice."""
    st = sec.st
    sec.rep.say(f"  {name}: {who} vs same-work floor, {rounds} rounds")
    ev_mon = len(await history.events(st.client, mon.workflow_ids[0]))
    ev_flo = len(await history.events(st.client, flo.workflow_ids[0]))
    for r in range(1, rounds + 1):
        k = klines(r)
        order = (mon, flo) if r % 2 else (flo, mon)
        for kind in order:
            await _burst(st, meter, kind, k, wait_rows, timeout)
        sec.rep.figure(
            f"  round {r} ({order[0].label} first)",
            f"{mon.stored[-1]:.2f} s vs {flo.stored[-1]:.2f} s",
            detail=f"ratio {ratio(mon.stored[-1], flo.stored[-1]):.2f}; CPU ms/candle "
            + "; ".join(f"{role} {mon.cpu[-1][role]:.1f} vs {flo.cpu[-1][role]:.1f}" for role in ROLES),
        )
    per_mon = (len(await history.events(st.client, mon.workflow_ids[0])) - ev_mon) / rounds
    per_flo = (len(await history.events(st.client, flo.workflow_ids[0])) - ev_flo) / rounds
    sec.rep.figure("history events per candle", f"{per_mon:.1f}", detail=f"same-work floor {per_flo:.1f}")
    rows = await sec.conn.fetchval(stored, [uuid.UUID(s) for s in mon.row_ids])
    mon.problems += abs(rows - len(mon.row_ids) * rounds)
    sec.rep.figure(f"{name}: lost or doubled", f"{mon.problems}", detail=f"same-work floor {flo.problems}")
    return _summary(sec.rep, name, mon, flo)


def _summary(rep: Report, title: str, mon: Kind, flo: Kind) -> float:
    ratios = [ratio(m, f) for m, f in zip(mon.stored, flo.stored, strict=True)]
    med = statistics.median(ratios)
    rep.figure(
        f"{title}: all stored (median)",
        f"{statistics.median(mon.stored):.2f} s (same-work floor {statistics.median(flo.stored):.2f} s)",
        detail=f"ratio {med:.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)})",
    )
    for role in ROLES:
        m = statistics.median(c[role] for c in mon.cpu)
        f = statistics.median(c[role] for c in flo.cpu)
        rep.figure(f"{title}: CPU {role}", f"{m:.1f} ms/candle", detail=f"same-work floor {f:.1f} (x{ratio(m, f):.2f})")
    total_m = statistics.median(sum(c.values()) for c in mon.cpu)
    total_f = statistics.median(sum(c.values()) for c in flo.cpu)
    rep.figure(
        f"{title}: CPU, all parts",
        f"{total_m:.1f} ms/candle",
        detail=f"same-work floor {total_f:.1f} (x{ratio(total_m, total_f):.2f})",
    )
    return med


async def _owners(conn: asyncpg.Connection, trader: str, sids: list[str], symbol: str) -> list[Owner]:
    row = await conn.fetchrow("SELECT user_id, strategy::text FROM traders WHERE id = $1", uuid.UUID(trader))
    strategy = json.loads(row["strategy"])
    return [Owner(s, trader, str(row["user_id"]), symbol, strategy, f"samework-position-{s}") for s in sids]


async def _start(st: Stack, workflow: str, owners: list[Owner], queue: str) -> list[str]:
    ids = [f"samework-{uuid.uuid4()}" for _ in owners]
    await data.gather_limited(
        (st.client.start_workflow(workflow, o, id=i, task_queue=queue) for i, o in zip(ids, owners, strict=True)), 32
    )
    return ids


async def monitors(sec: Section, same: WorkerProcess, meter: CpuMeter, n: int, rounds: int) -> float:
    st, conn, trader = sec.st, sec.conn, sec.trader
    timeout = 60 + n / 4
    symbol = data.symbol_for(f"s{n}")
    sids = await data.new_signals(conn, trader, n, symbol)
    wfs = await data.start_monitors(st.client, sids, sec.monitor.task_queue)
    await data.wait_analyses(conn, sids, 1, timeout, f"initial analyses of {n} monitors")
    fsids = await data.new_signals(conn, trader, n, symbol)
    fwfs = await _start(st, ANALYSIS_WORKFLOW, await _owners(conn, trader, fsids, symbol), same.task_queue)
    await data.wait_idle(st.client, wfs + fwfs, timeout, f"{n} monitors and {n} same-work floors settling")
    mon = Kind("monitor", sec.monitor, wfs, sids, burst.ANALYSE, burst.RECORD)
    flo = Kind("same-work", same, fwfs, fsids, ANALYSE_ACTIVITY, ANALYSE_ACTIVITY)
    mon.candles = 1  # analysis #0

    async def wait_rows(kind: Kind, k: dict, timeout: float) -> None:
        await data.wait_analyses(conn, kind.row_ids, kind.candles, timeout, f"{kind.label} burst of {n}", poll=0.02)

    def klines(r: int) -> dict:
        return data.kline(r, symbol)

    stored = "SELECT count(*) FROM signal_analyses WHERE signal_id = ANY($1::uuid[]) AND candle_open_time IS NOT NULL"
    return await _rounds(sec, meter, mon, flo, f"burst {n}", "monitor", klines, wait_rows, rounds, timeout, stored)


async def position_managers(sec: Section, same: WorkerProcess, meter: CpuMeter, n: int, rounds: int) -> float:
    st, conn, trader = sec.st, sec.conn, sec.trader
    timeout = 60 + n / 4
    symbol = data.symbol_for(f"q{n}")
    sids = await positions.entered(conn, trader, n, symbol)
    wfs = await positions.open_positions(st, conn, sids, sec.monitor.task_queue, timeout)
    fsids = [str(uuid.uuid4()) for _ in range(n)]
    fwfs = await _start(st, POSITION_WORKFLOW, await _owners(conn, trader, fsids, symbol), same.task_queue)
    await data.wait_idle(st.client, wfs + fwfs, timeout, f"{n} positions and {n} same-work floors settling")
    mon = Kind("position", sec.monitor, wfs, sids, positions.MANAGE, positions.RECORD)
    flo = Kind("same-work", same, fwfs, fsids, MANAGE_ACTIVITY, MANAGE_ACTIVITY)

    async def wait_rows(kind: Kind, k: dict, timeout: float) -> None:
        await positions.decisions(conn, kind.row_ids, k, timeout, f"{kind.label} burst of {n}")

    def klines(r: int) -> dict:
        return positions.close(r, symbol)

    stored = "SELECT count(*) FROM position_management_decisions WHERE signal_id = ANY($1::uuid[])"
    name = f"positions burst {n}"
    return await _rounds(sec, meter, mon, flo, name, "position managers", klines, wait_rows, rounds, timeout, stored)


def default_sizes(quick: bool) -> tuple[int, ...]:
    return (100, 300) if quick else (100, 1000)


def goal_names(quick: bool, sizes: tuple[int, ...] | None = None) -> list[str]:
    sizes = sizes or default_sizes(quick)
    return [f"same_work_burst_{n}_stored_ratio" for n in sizes] + [
        f"same_work_positions_burst_{n}_stored_ratio" for n in sizes
    ]


async def run(sec: Section, quick: bool, sizes: tuple[int, ...] | None = None, rounds: int = ROUNDS) -> None:
    rep = sec.rep
    sizes = sizes or default_sizes(quick)
    rep.say(
        f"\n== 10. against the same-work floor: one close to {' and '.join(map(str, sizes))} idle monitors, "
        "then open positions (issue 27) =="
    )
    meter = CpuMeter(sec.st)
    before = sec.st.proxy.manage_default
    sec.st.proxy.manage_default = lambda params: ManageAnswer.hold()  # every position stays open
    try:
        # A fresh worker of each kind: both caches start empty and hold the same workflows (the
        # section's worker would still hold the earlier sections' monitors).
        async with workers(
            start_monitor_worker(sec.st, new_queue("mon-same")), start_same_work_worker(sec.st, new_queue("same"))
        ) as (monitor, same):
            sec = dataclasses.replace(sec, monitor=monitor)
            for n in sizes:
                rep.goal(f"same_work_burst_{n}_stored_ratio", await monitors(sec, same, meter, n, rounds), 1.3)
            for n in sizes:
                rep.goal(
                    f"same_work_positions_burst_{n}_stored_ratio",
                    await position_managers(sec, same, meter, n, rounds),
                    1.3,
                )
    finally:
        sec.st.proxy.manage_default = before
