"""The running monitors, from Temporal visibility: which workflow ids watch which
(SYMBOL, interval). Monitors without both search attributes are still loading and are skipped
until a later refresh sees them."""

from __future__ import annotations

import logging
from collections import defaultdict

from temporalio.client import Client

from market.intervals import is_valid_interval
from runtime.config import BridgeSettings
from workflows.common.candles import is_valid_symbol
from workflows.common.search_attributes import SIGNAL_INTERVAL, SIGNAL_SYMBOL

from .events import emit
from .frames import StreamKey
from .stats import BridgeStats


class MonitorDirectory:
    def __init__(self, client: Client, cfg: BridgeSettings, stats: BridgeStats) -> None:
        self.client, self.cfg, self.stats = client, cfg, stats
        self.by_stream: dict[StreamKey, frozenset[str]] = {}
        self._warned: set[str] = set()

    def monitors_of(self, key: StreamKey) -> frozenset[str]:
        return self.by_stream.get(key, frozenset())

    async def refresh(self) -> dict[StreamKey, frozenset[str]]:
        found: dict[StreamKey, set[str]] = defaultdict(set)
        count = 0
        async for wf in self.client.list_workflows(self.cfg.query):
            sa = wf.typed_search_attributes
            symbol, interval = sa.get(SIGNAL_SYMBOL), sa.get(SIGNAL_INTERVAL)
            if not symbol or not interval:
                continue  # still loading: its attributes are not upserted yet
            if not is_valid_symbol(symbol) or not is_valid_interval(interval):
                if wf.id not in self._warned:
                    self._warned.add(wf.id)
                    emit(
                        "bridge.monitor_unwatchable",
                        logging.WARNING,
                        workflow_id=wf.id,
                        symbol=symbol,
                        interval=interval,
                    )
                continue
            found[(symbol, interval)].add(wf.id)
            count += 1
        self.by_stream = {key: frozenset(ids) for key, ids in found.items()}
        self.stats.monitors_watched = count
        self.stats.visibility_refreshes += 1
        return self.by_stream
