"""Helpers for the bridge tests: a bridge running in this process (or as the real CLI in a
subprocess) against a FakeBinance, watching only the monitors of one test's task queue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer
from fakes.temporal import closes_signalled
from runtime.config import RUNNING_MONITORS_QUERY, BridgeSettings
from signal_bridge.service import run_bridge
from signal_bridge.stats import BridgeStats
from tests.helpers.monitor import Monitor, monitor_stack
from tests.helpers.support import SignalRow, analyses, eventually, insert_signal, running_service


def bridge_config(fake: FakeBinance, task_queue: str, **overrides: object) -> BridgeSettings:
    """Fast settings for tests; the query is narrowed to this test's task queue so monitors of
    other tests sharing the session's Temporal server are not watched."""
    values: dict[str, object] = dict(
        ws_url=fake.ws_url,
        rest_url=fake.rest_url,
        refresh_seconds=0.5,
        query=f"{RUNNING_MONITORS_QUERY} AND TaskQueue = '{task_queue}'",
        reconnect_initial=0.2,
        reconnect_max=2.0,
        missing_close_grace=2.0,
        retry_initial=0.2,
        retry_max=2.0,
        stats_seconds=5.0,
    )
    values.update(overrides)
    cfg = BridgeSettings(**values)  # type: ignore[arg-type]
    cfg.check()
    return cfg


@contextlib.asynccontextmanager
async def running_bridge(client: Client, cfg: BridgeSettings) -> AsyncIterator[BridgeStats]:
    stats = BridgeStats()
    run = partial(run_bridge, cfg, client=client, stats=stats)
    async with running_service("bridge", lambda stop, ready: run(stop=stop, ready=ready), stop_within=30):
        yield stats


def bridge_env(fake: FakeBinance, task_queue: str, temporal_address: str, **knobs: object) -> dict[str, str]:
    """The environment of `signal-monitor bridge` run as a subprocess."""
    env = dict(os.environ)
    env.update(
        BINANCE_WS_URL=fake.ws_url,
        BINANCE_REST_URL=fake.rest_url,
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_NAMESPACE="default",
        SIGNAL_BRIDGE_REFRESH_SECONDS="0.5",
        SIGNAL_BRIDGE_QUERY=f"{RUNNING_MONITORS_QUERY} AND TaskQueue = '{task_queue}'",
        SIGNAL_BRIDGE_RECONNECT_INITIAL="0.2",
        SIGNAL_BRIDGE_RECONNECT_MAX="2",
        SIGNAL_BRIDGE_STATS_SECONDS="1",
    )
    env.pop("SIGNAL_MONITOR_METRICS_ADDRESS", None)
    env.update({k: str(v) for k, v in knobs.items()})
    return env


def start_bridge_process(env: dict[str, str], log_path: str) -> subprocess.Popen:
    log = open(log_path, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "bridge"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd()
    )


def start_shared_process(
    fake: FakeBinance, task_queue: str, temporal_address: str, database_url: str, group: str, check_seconds: float
) -> tuple[subprocess.Popen, str]:
    """A shared-mode replica (16 buckets) as a `signal-monitor bridge` subprocess, and its log file."""
    env = bridge_env(
        fake,
        task_queue,
        temporal_address,
        SIGNAL_BRIDGE_MODE="shared",
        DATABASE_URL=database_url,
        SIGNAL_BRIDGE_GROUP=group,
        SIGNAL_BRIDGE_BUCKETS=16,
        SIGNAL_BRIDGE_OWNERSHIP_CHECK_SECONDS=check_seconds,
    )
    with tempfile.NamedTemporaryFile(prefix="bridge-", suffix=".log", delete=False) as fh:
        log_path = fh.name
    return start_bridge_process(env, log_path), log_path


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


async def analysed_candles(db, signal_id: str) -> list[int]:
    """Open times (ms) of the candles the monitor analysed, in analysis order."""
    rows = await analyses(db, signal_id)
    return [int(r["candle_open_time"].timestamp() * 1000) for r in rows if r["candle_open_time"] is not None]


async def each_analysed_twice(db, rows, proc: subprocess.Popen, log_path: str) -> None:
    """Every row's monitor has analysed at least two closes, and the replica process still runs."""
    assert proc.poll() is None, open(log_path).read()[-3000:]
    for row in rows:
        assert len(await analysed_candles(db, row.signal_id)) >= 2


async def waiting_monitors(db, m: Monitor, symbols: list[str], closes: int) -> tuple[list[SignalRow], list]:
    """A 1m signal per symbol (a symbol twice: two signals), each monitor started with a wait
    scripted for each of its `closes` analyses; the rows and the handles, in that order."""
    rows = [await insert_signal(db, symbol=s, interval="1m", max_reanalyses=closes) for s in symbols]
    for row in rows:
        m.proxy.script(row.signal_id, *[Answer.wait(55) for _ in range(closes)])
    return rows, [await m.start(row.signal_id) for row in rows]


def assert_each_once(times: list[int]) -> None:
    doubled = [t for t, n in Counter(times).items() if n > 1]
    assert not doubled, f"candles analysed more than once: {doubled}"


def assert_fake_rules_kept(fake: FakeBinance) -> None:
    s = fake.stats
    assert s.rate_limit_closes == 0, "the bridge broke the 5 messages/s rule"
    assert s.stream_cap_rejections == 0 and s.max_streams_on_a_connection <= 1024
    assert s.rest_ban_violations == 0, "the bridge called REST during a Retry-After"


def forwarded_times(stats: BridgeStats, symbol: str, interval: str) -> list[int]:
    return [t for s, i, t, _ in stats.recent_forwards if (s, i) == (symbol, interval)]


async def forwarded_since(stats: BridgeStats, since: dict[str, int], at_least: int) -> None:
    """Each stream in `since` (symbol -> open time, 1m) had `at_least` closes forwarded after it."""
    for s, t0 in since.items():
        assert len([t for t in forwarded_times(stats, s, "1m") if t > t0]) >= at_least


def unique_symbol(prefix: str = "T") -> str:
    """A symbol no other test uses, so streams are not shared between tests."""
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}USDT"


def shared_config(
    fake: FakeBinance, task_queue: str, database_url: str, group: str, **overrides: object
) -> BridgeSettings:
    """A replica in shared mode; `group` keeps this test's replicas apart from any other's."""
    values: dict[str, object] = dict(
        mode="shared", database_url=database_url, group=group, buckets=16, ownership_check_seconds=0.5
    )
    values.update(overrides)
    return bridge_config(fake, task_queue, **values)


async def bucket_holders(db, group: str, buckets: int = 16) -> dict[int, set[int]]:
    """Who holds which bucket of `group`, straight from PostgreSQL (backend pid -> buckets)."""
    from signal_bridge.ownership import lock_space

    rows = await db.fetch(
        """SELECT pid, objid::int8 AS bucket FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::int8 = $1
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""",
        lock_space(group, buckets, "bucket"),
    )
    holders: dict[int, set[int]] = {}
    for r in rows:
        holders.setdefault(r["pid"], set()).add(r["bucket"])
    return holders


async def balanced(db, group: str, replicas: int) -> dict[int, set[int]]:
    """Waits until `replicas` replicas hold the 16 buckets of `group` between them, as evenly as
    they divide; who holds which."""

    async def check():
        holders = await bucket_holders(db, group)
        assert len(holders) == replicas and sorted(b for bs in holders.values() for b in bs) == list(range(16))
        assert all(16 // replicas <= len(bs) <= -(-16 // replicas) for bs in holders.values()), holders
        return holders

    return await eventually(check, timeout=30, interval=0.2)


async def sole_holder(db, group: str) -> int:
    """The one replica (its backend pid) holding all 16 buckets of `group`."""
    holders = await bucket_holders(db, group)
    assert len(holders) == 1 and len(next(iter(holders.values()))) == 16
    return next(iter(holders))


@dataclass
class Takeover:
    """Two shared replicas before one of them is disrupted (see `victim_and_survivor`)."""

    fake: FakeBinance
    group: str
    victim: subprocess.Popen  # the `signal-monitor bridge` process
    victim_pid: int  # its PostgreSQL backend, as `bucket_holders` names it
    survivor: BridgeStats
    holders: dict[int, set[int]]  # the balance once both ran
    symbols: list[str]
    rows: list[SignalRow]


@contextlib.asynccontextmanager
async def victim_and_survivor(
    client: Client, db, database_url: str, temporal_address: str, *, speed: int, check_seconds: float, closes: int
) -> AsyncIterator[Takeover]:
    """A fast fake Binance (`speed`) and one shared group: the victim, a real `signal-monitor bridge`
    process, holds every bucket first; then the survivor, in this process, shares them half and
    half (both check their ownership every `check_seconds`). Yielded once a monitor per stream
    (two streams per replica, a wait scripted for each of `closes` analyses) has analysed two
    closes. Afterwards the monitors are terminated and the victim is killed, whatever happened."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    # The fake replays from `replay_start()`, never past the wall clock.
    async with (
        FakeBinance(start=replay_start(), speed=speed, auto_series=True) as fake,
        monitor_stack(client, database_url) as m,
    ):
        victim, log_path = start_shared_process(
            fake, m.task_queue, temporal_address, database_url, group, check_seconds
        )
        try:
            victim_pid = await eventually(lambda: sole_holder(db, group), timeout=30, interval=0.2)
            cfg = shared_config(fake, m.task_queue, database_url, group, ownership_check_seconds=check_seconds)
            async with running_bridge(client, cfg) as survivor:
                holders = await balanced(db, group, 2)
                symbols = symbols_spread_over(holders, per_holder=2)
                rows, handles = await waiting_monitors(db, m, symbols, closes)
                await eventually(lambda: each_analysed_twice(db, rows, victim, log_path), timeout=90, interval=0.3)
                yield Takeover(fake, group, victim, victim_pid, survivor, holders, symbols, rows)
            for h in handles:
                await h.terminate("test over")
        finally:
            kill(victim)  # SIGKILL ends a stopped process too


def symbols_spread_over(holders: dict[int, set[int]], per_holder: int, buckets: int = 16) -> list[str]:
    """Fresh symbols (1m streams) chosen so that every holder owns `per_holder` of them."""
    from signal_bridge.buckets import bucket_of

    owner = {b: pid for pid, bs in holders.items() for b in bs}
    wanted = {pid: per_holder for pid in holders}
    chosen: list[str] = []
    while any(wanted.values()):
        symbol = unique_symbol("S")
        pid = owner.get(bucket_of((symbol, "1m"), buckets))
        if pid is not None and wanted[pid] > 0:
            wanted[pid] -= 1
            chosen.append(symbol)
    return chosen


async def signals_received(client: Client, workflow_id: str) -> Counter:
    """Open time -> `candle_closed` signals in the workflow's history (every run of it)."""
    got: Counter = Counter()
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        got += closes_signalled(await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history())
    return got


# How far in the past a fast fake Binance begins: its closes then run at `speed` toward the wall
# clock and never past it. At speed 30 an hour takes two minutes, longer than any bridge test.
REPLAY_LEAD = timedelta(hours=1)


def replay_start() -> datetime:
    """Where a fast fake Binance's clock begins; signals of the test are stamped the same instant."""
    return datetime.now(UTC) - REPLAY_LEAD


class Relay:
    """A TCP relay to Temporal that can be cut (open connections reset, new ones refused)."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host or "127.0.0.1", int(port))
        self.down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.down = True
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


@contextlib.asynccontextmanager
async def relayed_client(client: Client, temporal_address: str) -> AsyncIterator[tuple[Relay, Client]]:
    """A client for a bridge that reaches Temporal through a `Relay` the test can cut."""
    relay = Relay(temporal_address)
    address = await relay.start()
    try:
        yield relay, await Client.connect(address, namespace=client.namespace, data_converter=pydantic_data_converter)
    finally:
        await relay.stop()
