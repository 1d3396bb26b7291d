"""5. Memory: RSS of one `signal-monitor worker` process (its own task queue, sticky cache of
`SIGNAL_MONITOR_MAX_CACHED_WORKFLOWS`, default 1,000) when idle, then holding 1,000 and 10,000
idle monitors (each past its first analysis, waiting for a close). A floor worker with the same
cache holding 1,000 idle floor workflows is measured beside it."""

from __future__ import annotations

import asyncio
import gc
import time

import asyncpg

from bench import data
from bench.report import Report
from bench.stack import Stack, new_queue, start_floor_worker, start_monitor_worker, workers

CACHE = 1000


async def _settle() -> None:
    gc.collect()
    await asyncio.sleep(1.0)


async def run(st: Stack, rep: Report, conn: asyncpg.Connection, trader: str, counts: tuple[int, ...]) -> None:
    rep.say(f"\n== 5. memory: worker RSS with {' and '.join(map(str, counts))} idle monitors, cache {CACHE} ==")
    queue, fqueue = new_queue("mem"), new_queue("memfloor")
    async with workers(
        start_monitor_worker(st, queue, max_cached=CACHE), start_floor_worker(st, fqueue, max_cached=CACHE)
    ) as (mon, flo):
        await _settle()
        idle0, fidle0 = mon.rss_mb(), flo.rss_mb()
        rep.figure("worker RSS, no workflow", f"{idle0:.0f} MB", detail=f"floor worker {fidle0:.0f} MB")
        symbol = data.symbol_for("mem")
        have = 0
        rss: dict[int, float] = {}
        for n in counts:
            began = time.monotonic()
            sids = await data.new_signals(conn, trader, n - have, symbol)
            await data.start_monitors(st.client, sids, queue)
            await data.wait_analyses(conn, sids, 1, 60 + n / 4, f"initial analyses of {n} monitors")
            took = time.monotonic() - began
            have = n
            await _settle()
            rss[n] = mon.rss_mb()
            rep.figure(
                f"worker RSS, {n} idle monitors",
                f"{rss[n]:.0f} MB",
                detail=f"{len(sids)} started and first-analysed in {took:.1f} s ({len(sids) / took:.0f}/s)",
            )
        fids = await data.start_floors(st.client, min(counts[0], CACHE), fqueue)
        # A floor is idle once started: its first workflow task ran. Give the worker a moment.
        await asyncio.sleep(2.0)
        del fids
        frss = flo.rss_mb()
        rep.figure(f"floor worker RSS, {min(counts[0], CACHE)} idle floors", f"{frss:.0f} MB")
        per_cached = (rss[counts[0]] - idle0) / min(counts[0], CACHE) * 1024
        rep.figure(
            "RSS per cached monitor",
            f"{per_cached:.0f} KB",
            detail=f"floor {(frss - fidle0) / min(counts[0], CACHE) * 1024:.0f} KB; a cache of 10,000 "
            f"would need about {idle0 + per_cached * 10000 / 1024:.0f} MB",
        )
    for n in counts:
        rep.goal(f"memory_rss_{n}_idle_mb", round(rss[n]), 512)
    if len(counts) > 1:
        rep.goal(f"memory_rss_{counts[-1]}_vs_{counts[0]}_ratio", rss[counts[-1]] / rss[counts[0]], 1.25)
