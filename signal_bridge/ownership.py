"""Shared mode (`SIGNAL_BRIDGE_MODE=shared`): the replicas divide the streams through
PostgreSQL session-level advisory locks, one per bucket (`bucket_of(stream) mod buckets`).

Why advisory locks: PostgreSQL is already in the stack, a session lock lives exactly as long as
its connection, and `pg_locks` shows every holder, so there is no lease to renew and nothing to
clean up. A replica SIGKILLed (or its host gone: TCP keepalives below) loses its connection, so
its locks are free at once and the survivors take them at their next step. Each replica also
holds one member lock, which is how the replicas count each other to share ~buckets/replicas.

Each step (every `ownership_check_seconds`) reads the holders from `pg_locks`, takes or releases
per `buckets.plan`, and publishes the buckets held. Losing the connection keeps the buckets
held (their streams go on being sent) until the connection is back: another replica may take
them meanwhile and a close may then reach a monitor twice, which it ignores; dropping them could
leave a stream with no sender at all.

Connected is not alive: a replica frozen by SIGSTOP (or a stalled host) keeps its idle session and
its locks, and nobody would take its streams. Each step is also a heartbeat (the session's last
activity, `pg_stat_activity.state_change`, which the others read): a member whose session has been
idle for `STALE_STEPS` steps is fenced, its session terminated (`pg_terminate_backend`, allowed
between sessions of one role), which frees its locks; the others take its buckets at their next
step. Takeover time: about `STALE_STEPS` + 2 steps (16 s with the default 2 s step).
A fenced replica that wakes finds its connection gone, reconnects and rejoins; meanwhile it may send
closes of its old streams again, which monitors ignore as duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import zlib

import asyncpg

from runtime.config import BridgeSettings

from .buckets import bucket_of, plan
from .events import emit
from .frames import StreamKey
from .stats import BridgeStats

# The server drops a vanished client's session (and its locks) after about 10 + 5 x 3 s of
# silence: within the 30 s takeover budget even when the host disappears without a FIN.
# Steps without a heartbeat after which a replica is taken for frozen and fenced: long enough for a
# step that waits on a busy database (its timeout is two steps), short enough for the 30 s budget.
STALE_STEPS = 6

_KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}

_HOLDERS = """
SELECT classid::int8 AS space, objid::int8 AS key, pid
FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid::int8 = ANY($1::int8[])
"""
_STALE = """
SELECT pid FROM pg_stat_activity
WHERE pid = ANY($1::int4[]) AND pid <> pg_backend_pid() AND state = 'idle'
  AND state_change < clock_timestamp() - make_interval(secs => $2::float8)
"""
_FENCE = "SELECT p FROM unnest($1::int4[]) AS p WHERE pg_terminate_backend(p)"
_TAKE = "SELECT k FROM unnest($2::int4[]) AS k WHERE pg_try_advisory_lock($1::int4, k)"
_RELEASE = "SELECT pg_advisory_unlock($1::int4, k) FROM unnest($2::int4[]) AS k"


def lock_space(group: str, buckets: int, kind: str) -> int:
    """The first key of the two-key advisory locks: the bucket count is part of it, so replicas
    configured with different counts never split streams between two hash layouts (they form
    separate groups: closes doubled, never dropped)."""
    return zlib.crc32(f"signal-bridge:{group}:{buckets}:{kind}".encode()) & 0x7FFFFFFF


class BucketOwnership:
    def __init__(self, cfg: BridgeSettings, stats: BridgeStats) -> None:
        if not cfg.database_url:
            raise ValueError("shared mode needs DATABASE_URL")
        self.cfg, self.stats = cfg, stats
        self.buckets = cfg.buckets
        self.bucket_space = lock_space(cfg.group, cfg.buckets, "bucket")
        self.member_space = lock_space(cfg.group, cfg.buckets, "member")
        self.owned: frozenset[int] = frozenset()
        self.replicas = 0
        self.changed = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._pid = 0
        self._free_before: frozenset[int] = frozenset()
        self._failures = 0

    def owns(self, key: StreamKey) -> bool:
        return bucket_of(key, self.buckets) in self.owned

    async def step(self) -> None:
        """One rebalancing step; never raises (a database problem is logged and retried)."""
        try:
            if self._conn is None or self._conn.is_closed():
                await self._connect()
            await asyncio.wait_for(self._step(), timeout=max(5.0, 2 * self.cfg.ownership_check_seconds))
            self._failures = 0
        except Exception as exc:  # OSError, timeouts, asyncpg errors: keep what we hold, retry
            self._failures += 1
            self.stats.ownership_errors += 1
            if self._failures <= 3 or self._failures % 30 == 0:
                emit(
                    "bridge.ownership_failed",
                    logging.WARNING,
                    error=type(exc).__name__,
                    failures=self._failures,
                    keeping=len(self.owned),
                )
            await self._drop_connection()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.cfg.ownership_check_seconds)
            if not stop.is_set():
                await self.step()

    async def aclose(self) -> None:
        # Closing the session frees every lock at once: the others take over at their next step.
        await self._drop_connection()
        self._publish(frozenset())

    async def _connect(self) -> None:
        conn = await asyncpg.connect(
            self.cfg.database_url,
            timeout=10,
            server_settings={"application_name": "signal-monitor-bridge", **_KEEPALIVES},
        )
        try:
            while True:
                member = random.randrange(1, 2**31)
                if await conn.fetchval("SELECT pg_try_advisory_lock($1::int4, $2::int4)", self.member_space, member):
                    break
            self._pid = await conn.fetchval("SELECT pg_backend_pid()")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        emit("bridge.ownership_connected", group=self.cfg.group, buckets=self.buckets)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=5)
        if conn is not None:
            conn.terminate()

    async def _step(self) -> None:
        conn = self._conn
        assert conn is not None
        rows = await conn.fetch(_HOLDERS, [self.bucket_space, self.member_space])
        holdings: dict[int, set[int]] = {}
        held_by_dead: set[int] = set()
        members = {r["pid"] for r in rows if r["space"] == self.member_space}
        fenced = await self._fence(conn, members - {self._pid})
        if fenced:
            # Their locks go with their sessions: counted as held this step, free at the next.
            members -= fenced
        members.add(self._pid)
        for pid in members:
            holdings[pid] = set()
        for r in rows:
            if r["space"] == self.bucket_space and 0 <= r["key"] < self.buckets:
                (holdings[r["pid"]] if r["pid"] in holdings else held_by_dead).add(r["key"])
        # A bucket held by a session without a member lock (it is closing) counts as held.
        frozen = {pid: frozenset(keys) for pid, keys in holdings.items()}
        p = plan(self.buckets, self._pid, frozen, self._free_before, frozenset(held_by_dead))
        mine = set(holdings[self._pid])
        if p.release:
            await conn.execute(_RELEASE, self.bucket_space, sorted(p.release))
            mine -= p.release
        taken: set[int] = set()
        if p.take:
            taken = {r["k"] for r in await conn.fetch(_TAKE, self.bucket_space, sorted(p.take))}
            mine |= taken
        all_held = frozenset().union(held_by_dead, taken, *frozen.values())
        self._free_before = frozenset(range(self.buckets)) - all_held - p.release
        self.replicas = len(members)
        self.stats.bridge_replicas = self.replicas
        self.stats.buckets_owned = len(mine)
        if p.release or taken:
            emit(
                "bridge.ownership",
                replicas=self.replicas,
                owned=len(mine),
                took=len(taken),
                released=len(p.release),
            )
        self._publish(frozenset(mine))

    async def _fence(self, conn: asyncpg.Connection, others: set[int]) -> set[int]:
        """Terminates the sessions of members that stopped beating; returns their pids."""
        if not others:
            return set()
        stale_after = STALE_STEPS * self.cfg.ownership_check_seconds
        stale = [r["pid"] for r in await conn.fetch(_STALE, sorted(others), stale_after)]
        if not stale:
            return set()
        fenced = {r["p"] for r in await conn.fetch(_FENCE, stale)}
        if fenced:
            self.stats.replicas_fenced += len(fenced)
            emit(
                "bridge.replica_fenced",
                logging.WARNING,
                pids=sorted(fenced),
                idle_over_s=stale_after,
                note="its session was idle too long (frozen?): terminated, its streams move to the others",
            )
        return fenced

    def _publish(self, owned: frozenset[int]) -> None:
        if owned != self.owned:
            self.owned = owned
            self.stats.ownership_changes += 1
            self.stats.ownership_changed_at = time.monotonic()
            self.changed.set()
