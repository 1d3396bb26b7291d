"""2. Burst and 6. fan-out scaling: N idle monitors on one symbol and interval get one close, as a
bridge fans it out (bounded concurrent signal RPCs from one sender), then N floor workflows get the
same close from the same sender. Figures: time from the first signal sent until every per-candle
activity has started, and until every candle's last activity completed (monitor: its analysis is
stored in PostgreSQL; floor: the no-op ran). Nothing lost, nothing doubled, checked in PostgreSQL,
in the fake llm-proxy's requests and in every history."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import asyncpg

from bench import data, history
from bench.floor import NOOP_ACTIVITY
from bench.report import Report, ratio
from bench.stack import Stack, WorkerProcess, wait_floor_done

ANALYSE, RECORD = "analyze_signal", "record_analysis"


@dataclass
class BurstTimes:
    n: int
    all_started: float  # seconds
    all_stored: float
    send_time: float  # seconds the sender needed to hand every signal to the server
    problems: int  # lost + doubled


@dataclass
class Fleet:
    """Idle monitors and floors ready for bursts (their initial work done)."""

    symbol: str
    signal_ids: list[str]
    monitor_ids: list[str]
    floor_ids: list[str]
    next_candle: int = 1


async def prepare(st: Stack, conn: asyncpg.Connection, trader: str, n: int, monitor_queue: str,
                  floor_queue: str, timeout: float) -> Fleet:
    symbol = data.symbol_for(f"b{n}")
    sids = await data.new_signals(conn, trader, n, symbol)
    wfs = await data.start_monitors(st.client, sids, monitor_queue)
    await data.wait_analyses(conn, sids, 1, timeout, f"initial analyses of {n} monitors")
    fwfs = await data.start_floors(st.client, n, floor_queue)
    return Fleet(symbol, sids, wfs, fwfs)


async def _monitor_burst(st: Stack, conn: asyncpg.Connection, fleet: Fleet, k: dict, timeout: float) -> BurstTimes:
    n = len(fleet.monitor_ids)
    st.proxy.requests.clear()
    t0 = time.time()
    await data.send_closes(st.client, fleet.monitor_ids, k)
    sent = time.time() - t0
    await data.wait_analyses(conn, fleet.signal_ids, fleet.next_candle + 1, timeout, f"burst of {n}")
    timings = await history.timings_of(st.client, fleet.monitor_ids, ANALYSE, RECORD)
    problems = 0
    last = []
    for w, ts in timings.items():
        mine = [t for t in ts if t.signaled_at >= t0 - 0.01]
        problems += abs(len(mine) - 1)
        last.extend(mine)
    rows = await conn.fetch(
        """SELECT signal_id, count(*) AS c FROM signal_analyses
           WHERE signal_id = ANY($1::uuid[]) AND candle_open_time = to_timestamp($2 / 1000.0)
           GROUP BY signal_id""",
        [uuid.UUID(s) for s in fleet.signal_ids],
        k["t"],
    )
    problems += (n - len(rows)) + sum(r["c"] - 1 for r in rows)
    asked = [r.signal_id for r in st.proxy.requests if (r.params.get("candle") or {}).get("openTime") == k["t"]]
    problems += abs(len(asked) - n) + (len(asked) - len(set(asked)))
    return BurstTimes(n, max(t.started_at for t in last) - t0, max(t.stored_at for t in last) - t0, sent, problems)


async def _floor_burst(st: Stack, floors: list[WorkerProcess], fleet: Fleet, k: dict, timeout: float) -> BurstTimes:
    n = len(fleet.floor_ids)
    t0 = time.time()
    await data.send_closes(st.client, fleet.floor_ids, k)
    sent = time.time() - t0
    await wait_floor_done(floors, {f"{w} {k['t']}" for w in fleet.floor_ids}, timeout)
    timings = await history.timings_of(st.client, fleet.floor_ids, NOOP_ACTIVITY, NOOP_ACTIVITY)
    problems, last = 0, []
    for w, ts in timings.items():
        mine = [t for t in ts if t.signaled_at >= t0 - 0.01]
        problems += abs(len(mine) - 1)
        last.extend(mine)
    return BurstTimes(n, max(t.started_at for t in last) - t0, max(t.stored_at for t in last) - t0, sent, problems)


async def burst(st: Stack, rep: Report, conn: asyncpg.Connection, fleet: Fleet, floors: list[WorkerProcess],
                timeout: float, label: str = "") -> tuple[BurstTimes, BurstTimes]:
    k = data.kline(fleet.next_candle, fleet.symbol)
    mon = await _monitor_burst(st, conn, fleet, k, timeout)
    flo = await _floor_burst(st, floors, fleet, k, timeout)
    fleet.next_candle += 1
    n = mon.n
    rep.figure(f"burst {n}{label}: all analyses started", f"{mon.all_started:.2f} s (floor {flo.all_started:.2f} s)",
               detail=f"ratio {ratio(mon.all_started, flo.all_started):.2f}")
    rep.figure(f"burst {n}{label}: all results stored", f"{mon.all_stored:.2f} s (floor {flo.all_stored:.2f} s)",
               detail=f"ratio {ratio(mon.all_stored, flo.all_stored):.2f}")
    rep.figure(f"burst {n}{label}: signals handed to server", f"{mon.send_time:.2f} s (floor {flo.send_time:.2f} s)")
    rep.figure(f"burst {n}{label}: lost or doubled", f"{mon.problems} (floor {flo.problems})")
    return mon, flo
