"""9. The big burst: one close to 10,000 idle monitors (issue 16), one worker each for monitor and
floor, as in section 2 but past the worker's workflow cache (1,000): most monitors are replayed
from their history to take the close, which is what a real fleet of that size costs. Figures: time
from the first signal sent until every analysis started and until every result is stored, beside
the floor's; lost or doubled (PostgreSQL rows, fake-proxy requests, every history) must be 0.
Full run only (about 5 minutes here): `python -m bench --only burst10k [--big-burst N]`."""

from __future__ import annotations

import time

from bench import burst
from bench.report import ratio
from bench.stack import Section

DEFAULT_SIZE = 10_000


async def run(sec: Section, n: int = DEFAULT_SIZE) -> None:
    st, rep, conn, trader, monitor, floor = sec.st, sec.rep, sec.conn, sec.trader, sec.monitor, sec.floor
    rep.say(f"\n== 9. big burst: one close to {n} idle monitors (one worker each, cache 1,000) ==")
    began = time.monotonic()
    # Starting n monitors runs n initial analyses first; generous, since the sender is one process.
    timeout = 120 + n / 10
    fleet = await burst.prepare(st, conn, trader, n, monitor.task_queue, floor.task_queue, timeout)
    rep.figure(f"{n} monitors started and idle", f"{time.monotonic() - began:.0f} s")
    mon, flo = await burst.burst(st, rep, conn, fleet, [floor], timeout)
    rep.goal(f"burst_{n}_lost_or_doubled", mon.problems, 0)
    rep.figure(f"burst {n}: stored ratio (no goal)", f"{ratio(mon.all_stored, flo.all_stored):.2f}")
