"""Long fault cases, the signal bridge against a FakeBinance making 1m candles (20-30x compressed),
three monitors on three symbols:

- `signal-monitor bridge` (a subprocess) SIGKILLed and started again, several times;
- two `signal-monitor bridge` processes at once for a while, both forwarding every close;
- the bridge cut off from Temporal for a minute (a TCP relay between them, reset and refusing),
  then reconnected.

Closes the exchange made while no bridge listened, or while the bridge could not reach Temporal,
may be superseded by the newest one (the product forwards only a stream's newest missed close);
the newest must be analysed, and nothing twice. Each case ends with the three checks."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer, always
from tests.helpers.bridge import (
    assert_fake_rules_kept,
    bridge_config,
    bridge_env,
    kill,
    relayed_client,
    replay_start,
    running_bridge,
    start_bridge_process,
    unique_symbol,
)
from tests.helpers.fault_checks import Expectation, Figures, assert_three_checks, closes_between, kline_floor
from tests.helpers.monitor import monitor_stack
from tests.helpers.restarts import state_of
from tests.helpers.support import eventually, insert_signal

# Minutes each: left out of the default run; `pytest -m long tests/faults` or `python -m bench.faults`.
pytestmark = pytest.mark.long

INTERVAL = "1m"


async def _rows(db, start: datetime, n: int = 3):
    """Signals stamped at the fake Binance's replay start (it never runs past the wall clock)."""
    return [
        await insert_signal(db, symbol=unique_symbol("BF"), interval=INTERVAL, timestamp=start, max_reanalyses=1000)
        for _ in range(n)
    ]


async def _wait_log(path: str, text: str, proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in Path(path).read_text(errors="replace"):
        assert proc.poll() is None, Path(path).read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in the bridge's log within {timeout} s"
        await asyncio.sleep(0.1)


async def _stop_exchange(fake: FakeBinance, rows) -> dict[str, list[int]]:
    """The exchange stops making candles; what it made, per monitor."""
    for row in rows:
        task = fake.series_tasks.pop((row.symbol, INTERVAL), None)
        if task is not None:
            task.cancel()
    await asyncio.sleep(0.5)
    return {row.signal_id: [c.t for c in fake.market.closed.get((row.symbol, INTERVAL), [])] for row in rows}


def _closed(fake: FakeBinance, row) -> int:
    return len(fake.market.closed.get((row.symbol, INTERVAL), []))


async def _expectations(client, rows, made: dict[str, list[int]], allowed: dict[str, int]) -> list[Expectation]:
    out = []
    for row in rows:
        skipped = (await state_of(client, row.signal_id)).counts.skipped
        closes = closes_between(made[row.signal_id], after_ms=kline_floor(row.timestamp))
        out.append(Expectation(row.signal_id, closes, superseded_allowed=allowed.get(row.signal_id, 0) + skipped))
    return out


async def _three_checks(client, db, case: str, rows, made: dict[str, list[int]], allowed: dict[str, int]) -> Figures:
    """The three checks of tests/helpers/fault_checks.py on every row's closes (60 s to settle)."""
    return await assert_three_checks(client, db, case, await _expectations(client, rows, made, allowed), timeout=60)


async def test_bridge_killed_and_restarted_repeatedly(client, database_url, db, temporal_address):
    start = replay_start()  # the fake replays from here, never past the wall clock
    rows = await _rows(db, start)
    logs: list[str] = []
    async with FakeBinance(start=start, speed=20, auto_series=True) as fake, monitor_stack(client, database_url) as m:
        m.proxy.default = always(Answer.wait(55))
        handles = [await m.start(row.signal_id) for row in rows]
        env = bridge_env(fake, m.task_queue, temporal_address)
        allowed = {row.signal_id: 0 for row in rows}

        def new_bridge():
            fd, path = tempfile.mkstemp(prefix="bridge-fault-", suffix=".log")
            os.close(fd)
            logs.append(path)
            return start_bridge_process(env, path), path

        proc, path = new_bridge()
        try:
            await _wait_log(path, "bridge.connected", proc)
            kills = 0
            for down in (4.0, 7.0, 2.0):
                await asyncio.sleep(6.0)  # live closes flow
                kill(proc)
                kills += 1
                at_kill = {row.signal_id: _closed(fake, row) for row in rows}
                await asyncio.sleep(down)
                proc, path = new_bridge()
                await _wait_log(path, "bridge.connected", proc)
                # Closes made while no bridge listened: only the newest is forwarded (from REST).
                for row in rows:
                    allowed[row.signal_id] += max(0, _closed(fake, row) - at_kill[row.signal_id])
            await asyncio.sleep(8.0)
            made = await _stop_exchange(fake, rows)
            fig = await _three_checks(
                client,
                db,
                f"bridge: SIGKILLed and restarted {kills}x (3 monitors, live 1m closes)",
                rows,
                made,
                allowed,
            )
            backfills = Path(path).read_text(errors="replace").count("bridge.backfill")
        finally:
            kill(proc)
            for p in logs:
                Path(p).unlink(missing_ok=True)
        for handle in handles:
            await handle.terminate("fault case over")
    assert fig.closes_in >= 3 * 10
    assert_fake_rules_kept(fake)
    print(f"\n{fig.summary()}; closes missed while down (allowed to be superseded) {allowed}; backfills {backfills}")


async def test_two_bridges_at_once(client, database_url, db, temporal_address):
    start = replay_start()  # the fake replays from here, never past the wall clock
    rows = await _rows(db, start)
    logs = []
    async with FakeBinance(start=start, speed=20, auto_series=True) as fake, monitor_stack(client, database_url) as m:
        m.proxy.default = always(Answer.wait(55))
        handles = [await m.start(row.signal_id) for row in rows]
        env = bridge_env(fake, m.task_queue, temporal_address)
        procs = []
        try:
            for _ in range(2):
                fd, path = tempfile.mkstemp(prefix="bridge-fault-", suffix=".log")
                os.close(fd)
                logs.append(path)
                procs.append(start_bridge_process(env, path))
            for proc, path in zip(procs, logs, strict=False):
                await _wait_log(path, "bridge.connected", proc)
            await asyncio.sleep(20.0)
            made = await _stop_exchange(fake, rows)
            fig = await _three_checks(
                client, db, "bridge: two bridges at once for 20 s (3 monitors, live 1m closes)", rows, made, {}
            )
            duplicates = [(await state_of(client, row.signal_id)).counts.duplicate for row in rows]
            alive = [proc.poll() is None for proc in procs]
        finally:
            for proc in procs:
                kill(proc)
            for p in logs:
                Path(p).unlink(missing_ok=True)
        for handle in handles:
            await handle.terminate("fault case over")
    assert all(alive)
    # Both bridges delivered: the workflows dropped the second copy of most closes.
    assert all(d >= 5 for d in duplicates), duplicates
    assert fig.closes_in >= 3 * 5
    assert_fake_rules_kept(fake)
    print(f"\n{fig.summary()}; duplicates dropped by the workflows {duplicates}")


OUTAGE = 60.0


async def test_bridge_cut_off_from_temporal_for_a_minute(client, database_url, db, temporal_address):
    start = replay_start()  # the fake replays from here, never past the wall clock
    rows = await _rows(db, start)
    async with (
        relayed_client(client, temporal_address) as (relay, bridge_client),
        FakeBinance(start=start, speed=20, auto_series=True) as fake,
        monitor_stack(client, database_url) as m,
    ):
        m.proxy.default = always(Answer.wait(55))
        handles = [await m.start(row.signal_id) for row in rows]
        cfg = bridge_config(fake, m.task_queue, signal_timeout=1.0, retry_initial=0.5, retry_max=2.0)
        async with running_bridge(bridge_client, cfg) as stats:
            await eventually(lambda: _true(stats.signals_sent >= 6), timeout=60)
            relay.cut()
            at_cut = {row.signal_id: _closed(fake, row) for row in rows}
            failures = stats.signal_failures
            await asyncio.sleep(OUTAGE)
            during = stats.signal_failures - failures
            relay.down = False
            # Closes made while Temporal was out of reach: only the newest is owed.
            allowed = {row.signal_id: _closed(fake, row) - at_cut[row.signal_id] for row in rows}
            await asyncio.sleep(10.0)  # live again
            made = await _stop_exchange(fake, rows)
            await eventually(lambda: _true(stats.delivery_backlog == 0), timeout=60)
            fig = await _three_checks(
                client,
                db,
                f"bridge: cut off from Temporal for {OUTAGE:.0f} s (3 monitors, live 1m closes)",
                rows,
                made,
                allowed,
            )
            snap, counts = stats.snapshot(), stats.counters()
        for handle in handles:
            await handle.terminate("fault case over")
    assert during >= 3 and counts["signals_retried"] >= 1
    # Older closes of the outage gave way to the newest, by the bridge's own count.
    assert counts["signals_superseded"] >= 1
    assert_fake_rules_kept(fake)
    print(
        f"\n{fig.summary()}; closes made during the outage {allowed}, failures {during}, "
        f"retried {snap['signals_retried']}, superseded {snap['signals_superseded']}"
    )


async def _true(condition: bool) -> None:
    assert condition
