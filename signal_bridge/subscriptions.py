"""Which stream rides on which connection. Streams are packed first-fit into shards of at most
`streams_per_connection`; a stream stays on its shard while it is watched (moving it would mean
an unsubscribe/subscribe gap), and an emptied shard's connection is closed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from runtime.config import BridgeSettings

from .backoff import AttemptBudget
from .connection import OnKline
from .events import emit
from .shard import OnConnected, Shard
from .stats import BridgeStats


class SubscriptionManager:
    def __init__(self, cfg: BridgeSettings, stats: BridgeStats, on_kline: OnKline, on_connected: OnConnected) -> None:
        self.cfg, self.stats = cfg, stats
        self.on_kline, self.on_connected = on_kline, on_connected
        self.shards: list[Shard] = []
        self.assignment: dict[str, Shard] = {}
        self.budget = AttemptBudget(cfg.connect_attempts_per_5min)
        self._next_index = 0
        # Shards being stopped in the background: held so the task is not garbage-collected mid-stop.
        self._stopping: set[asyncio.Future[None]] = set()
        self._initial = True  # shards created by the first update are backfilled on connect

    def update(self, desired: Iterable[str]) -> None:
        desired = set(desired)
        changed: set[Shard] = set()
        for stream in set(self.assignment) - desired:
            shard = self.assignment.pop(stream)
            shard.desired.discard(stream)
            changed.add(shard)
        added = sorted(desired - set(self.assignment))
        for stream in added:
            room = next((s for s in self.shards if len(s.desired) < self.cfg.streams_per_connection), None)
            if room is not None:
                shard = room
            else:
                shard = Shard(
                    self._next_index,
                    self.cfg,
                    self.stats,
                    self.on_kline,
                    self.on_connected,
                    self.budget,
                    backfill_first_connect=self._initial and self.cfg.backfill_on_start,
                )
                self._next_index += 1
                self.shards.append(shard)
            shard.desired.add(stream)
            if not self._initial and self.cfg.backfill_new_streams:
                shard.fresh.add(stream)
            self.assignment[stream] = shard
            changed.add(shard)
        self._initial = False
        for shard in changed:
            if not shard.desired:
                self.shards.remove(shard)
                stopping = asyncio.ensure_future(shard.stop())
                self._stopping.add(stopping)
                stopping.add_done_callback(self._stopping.discard)
            elif shard._task is None:
                shard.start()
            else:
                shard.set_desired(shard.desired)
        self.stats.streams_watched = len(self.assignment)
        if changed:
            emit("bridge.streams", watched=len(self.assignment), added=len(added), shards=len(self.shards))

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.shards), return_exceptions=True)
        self.shards.clear()
        self.assignment.clear()
