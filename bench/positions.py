"""8. Positions: the PositionManagerWorkflow's history cost per managed candle, and a burst of N
open positions (1,000 in the full run) getting one close, beside the floor getting the same close
from the same sender (the monitor's burst is section 2). A managed candle is: the close, the
deterministic checks, the `manage-position` call (the fake llm-proxy answers `hold` at once) and
the `position_management_decisions` row. Nothing lost, nothing doubled, checked in PostgreSQL, in
the fake llm-proxy's requests and in every history."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from bench import burst, data, history
from bench.floor import BareFloorWorkflow
from bench.history_cost import settled
from bench.report import ratio
from bench.stack import Section, Stack, wait_floor_done
from fakes.llm_proxy import ManageAnswer
from workflows.common import names
from workflows.position.models import PositionManagerInput
from workflows.position.workflow import PositionManagerWorkflow

# Since the patch `position-manage-activity-records-a-hold` one activity asks and writes a hold's row
# (the bench's answers are all holds).
MANAGE = RECORD = names.MANAGE_AND_RECORD_POSITION_ACTIVITY
# Entered an hour ago, so the closes a position manages are closes of the past (a position, like
# the monitor, refuses closes from the future).
STEP = data.STEP or 60_000
BASE_MS = (int(time.time() * 1000) - 3_600_000) // STEP * STEP
ENTRY = 43250.0


def close(n: int, symbol: str) -> dict[str, Any]:
    """The n-th 1m close after the entry candle (n >= 1); prices far from the stop and target."""
    t = BASE_MS + n * STEP
    return {**data.kline(1, symbol), "t": t, "T": t + STEP - 1}


async def entered(conn: asyncpg.Connection, trader_id: str, n: int, symbol: str) -> list[str]:
    """n signals already `in_position` with their order intents, as the monitor leaves an enter."""
    user_id = await conn.fetchval("SELECT user_id FROM traders WHERE id = $1", uuid.UUID(trader_id))
    ids = [uuid.uuid4() for _ in range(n)]
    stamped = data.SIGNAL_TIME - timedelta(hours=1)
    await conn.copy_records_to_table(
        "signals",
        columns=["id", "trader_id", "symbol", "interval", "timestamp", "price_at_signal", "status"],
        records=[(i, uuid.UUID(trader_id), symbol, data.INTERVAL, stamped, ENTRY, "in_position") for i in ids],
    )
    await conn.copy_records_to_table(
        "order_intents",
        columns=["signal_id", "trader_id", "user_id", "symbol", "side", "entry_price", "stop_loss", "take_profits"],
        records=[
            (i, uuid.UUID(trader_id), user_id, symbol, "buy", ENTRY, ENTRY / 2, json.dumps([ENTRY * 2])) for i in ids
        ],
    )
    return [str(i) for i in ids]


async def open_positions(st: Stack, conn: asyncpg.Connection, signal_ids: list[str], queue: str, timeout: float):
    inputs = [
        PositionManagerInput(signal_id=s, entry_price=Decimal(str(ENTRY)), entry_candle_t=BASE_MS) for s in signal_ids
    ]
    await data.gather_limited(
        (
            st.client.start_workflow(
                names.POSITION_WORKFLOW_TYPE, i, id=names.position_workflow_id_for(i.signal_id), task_queue=queue
            )
            for i in inputs
        ),
        32,
    )
    await _wait_count(
        conn,
        "SELECT count(*) FROM positions WHERE signal_id = ANY($1::uuid[]) AND status = 'open'",
        signal_ids,
        len(signal_ids),
        timeout,
        f"{len(signal_ids)} positions opened",
    )
    return [names.position_workflow_id_for(s) for s in signal_ids]


async def _wait_count(conn, sql: str, ids: list[str], want: int, timeout: float, what: str, *args) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = await conn.fetchval(sql, [uuid.UUID(s) for s in ids], *args)
        if got >= want:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {got} of {want} after {timeout:.0f}s")
        await asyncio.sleep(0.02)


async def decisions(conn, signal_ids: list[str], k: dict, timeout: float, what: str) -> None:
    await _wait_count(
        conn,
        "SELECT count(*) FROM position_management_decisions WHERE signal_id = ANY($1::uuid[]) "
        "AND candle_open_time = to_timestamp($2 / 1000.0)",
        signal_ids,
        len(signal_ids),
        timeout,
        what,
        k["t"],
    )


async def _position_burst(
    st: Stack, conn: asyncpg.Connection, signal_ids: list[str], wfs: list[str], k: dict, timeout: float
) -> burst.BurstTimes:
    n = len(wfs)
    st.proxy.requests.clear()
    t0 = time.time()
    await data.send_closes(st.client, wfs, k)
    sent = time.time() - t0
    await decisions(conn, signal_ids, k, timeout, f"burst of {n} positions")
    timings = await history.timings_of(st.client, wfs, MANAGE, RECORD)
    rows = await conn.fetch(
        """SELECT signal_id, count(*) AS c FROM position_management_decisions
           WHERE signal_id = ANY($1::uuid[]) AND candle_open_time = to_timestamp($2 / 1000.0)
           GROUP BY signal_id""",
        [uuid.UUID(s) for s in signal_ids],
        k["t"],
    )
    problems = (n - len(rows)) + sum(r["c"] - 1 for r in rows)
    asked = [
        r.params.get("signalId")
        for r in st.proxy.requests
        if r.body.get("operation") == "manage-position" and (r.params.get("candle") or {}).get("openTime") == k["t"]
    ]
    problems += abs(len(asked) - n) + (len(asked) - len(set(asked)))
    return burst.collect(n, timings, t0, sent, problems)


async def run(sec: Section, quick: bool, per_kind: int = 10) -> None:
    st, rep, conn, trader, monitor, floor = sec.st, sec.rep, sec.conn, sec.trader, sec.monitor, sec.floor
    n = 100 if quick else 1000
    rep.say(f"\n== 8. positions: {per_kind} managed candles in one position; one close to {n} open positions ==")
    before = st.proxy.manage_default
    st.proxy.manage_default = lambda params: ManageAnswer.hold()  # every position stays open
    try:
        client = st.client
        symbol = data.symbol_for("pos")
        sids = await entered(conn, trader, 1, symbol)
        [wf] = await open_positions(st, conn, sids, monitor.task_queue, 60)
        [fwf] = await data.start_floors(client, 1, floor.task_queue)
        base, fbase = await settled(client, wf), await settled(client, fwf)
        for i in range(1, per_kind + 1):
            k = close(i, symbol)
            await client.get_workflow_handle(wf).signal(PositionManagerWorkflow.candle_closed, k)
            await decisions(conn, sids, k, 30, f"managed close {i}")
            await client.get_workflow_handle(fwf).signal(BareFloorWorkflow.candle_closed, k)
            await wait_floor_done([floor], {f"{fwf} {k['t']}"}, 30)
            await asyncio.sleep(0.1)
        managed, fmanaged = await settled(client, wf), await settled(client, fwf)
        per = (len(managed) - len(base)) / per_kind
        per_bytes = (history.size(managed) - history.size(base)) / per_kind
        fper = (len(fmanaged) - len(fbase)) / per_kind
        rep.figure(
            "per managed candle (hold)",
            f"{per:.1f} events, {per_bytes:.0f} bytes",
            detail=f"floor {fper:.1f} events, {(history.size(fmanaged) - history.size(fbase)) / per_kind:.0f} bytes",
        )
        rep.goal("history_events_per_managed_candle", round(per, 1), 12)

        symbol = data.symbol_for(f"p{n}")
        sids = await entered(conn, trader, n, symbol)
        began = time.monotonic()
        wfs = await open_positions(st, conn, sids, monitor.task_queue, 60 + n / 4)
        rep.figure(f"{n} positions opened", f"{time.monotonic() - began:.1f} s", detail="started 32 at a time")
        fleet = burst.Fleet(symbol, [], [], await data.start_floors(client, n, floor.task_queue))
        await data.wait_idle(client, wfs + fleet.floor_ids, 60 + n / 4, f"{n} positions and {n} floors settling")
        k = close(1, symbol)
        pos = await _position_burst(st, conn, sids, wfs, k, 60 + n / 4)
        flo = await burst.floor_burst(st, [floor], fleet, k, 60 + n / 4)
    finally:
        st.proxy.manage_default = before
    burst.report(rep, f"positions burst {n}", pos, flo, started="manage-position calls", stored="decisions")
    rep.goal(f"positions_burst_{n}_stored_ratio", ratio(pos.all_stored, flo.all_stored), 1.2)
    rep.goal(f"positions_burst_{n}_lost_or_doubled", pos.problems, 0)
