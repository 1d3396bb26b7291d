"""The bridge's counters as Prometheus metrics through the process's Temporal runtime meter
(`runtime.metrics`), named `signal_monitor_bridge_*`. Labels are only symbol, interval or kind:
never free text. Counters are mirrored from `BridgeStats` by a short poll, so the bridge's own
code paths keep one source of truth."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio.common import MetricMeter

from .stats import BridgeStats

PREFIX = "signal_monitor_bridge_"

# Metric name -> BridgeStats counter, description.
COUNTERS = {
    "closes_received": ("closes_received", "closed-candle frames received (x=true), duplicates included"),
    "closes_forwarded": ("closes_forwarded", "distinct closes passed on to the monitors"),
    "duplicates_dropped": ("duplicates_dropped", "closes dropped as already forwarded"),
    "backfilled": ("backfilled", "closes forwarded from REST after a gap"),
    "delivery_failures": ("signal_failures", "candle_closed signals that failed and will be retried"),
    "signals_sent": ("signals_sent", "candle_closed signals accepted by Temporal"),
    "signals_not_found": ("signals_not_found", "signals to a monitor that had just ended"),
    "connects": ("connects", "WebSocket connections opened"),
    "reconnects": ("reconnects", "WebSocket connections lost unexpectedly"),
    "rotations": ("rotations", "make-before-break connection replacements"),
    "exchange_gaps": ("exchange_gaps", "candles missing on the exchange itself"),
    "missing_closes": ("missing_closes_detected", "closes the stream did not deliver (then asked from REST)"),
    "rest_rate_limited": ("rest_rate_limited", "REST answers 429/418 (Retry-After obeyed)"),
}
GAUGES = {
    "streams_watched": ("streams_watched", "kline streams watched"),
    "monitors_watched": ("monitors_watched", "running monitors seen in visibility"),
    "connections": ("connections_open", "open WebSocket connections"),
    "buckets_owned": ("buckets_owned", "shared mode: stream buckets this replica sends"),
    "replicas": ("bridge_replicas", "shared mode: live bridge replicas seen"),
    "streams_overdue": ("streams_overdue", "streams sent here with no close for two intervals and a minute"),
}


class BridgeMetrics:
    def __init__(self, meter: MetricMeter, stats: BridgeStats) -> None:
        self.stats = stats
        self._counters = {name: meter.create_counter(PREFIX + name, desc) for name, (_, desc) in COUNTERS.items()}
        self._malformed = meter.create_counter(PREFIX + "malformed_frames", "bad frames skipped, by kind")
        self._gauges = {name: meter.create_gauge(PREFIX + name, desc) for name, (_, desc) in GAUGES.items()}
        self._latency = meter.create_histogram_timedelta(
            PREFIX + "close_to_signal_latency", "close frame (or REST row) received -> signal accepted"
        )
        self._last: dict[str, int] = {}
        self._last_malformed: dict[str, int] = {}
        stats.latency_hook = self._observe_latency
        for counter in self._counters.values():
            counter.add(0)  # exported from the start, so rate() and alerts see a zero

    def _observe_latency(self, ms: float, key: tuple[str, str]) -> None:
        self._latency.record(timedelta(milliseconds=ms), {"interval": key[1]})

    def sync(self) -> None:
        for name, (attr, _) in COUNTERS.items():
            value = getattr(self.stats, attr)
            delta = value - self._last.get(name, 0)
            if delta > 0:
                self._counters[name].add(delta)
            self._last[name] = value
        for kind, value in list(self.stats.malformed_by_reason.items()):
            delta = value - self._last_malformed.get(kind, 0)
            if delta > 0:
                self._malformed.add(delta, {"kind": kind})
            self._last_malformed[kind] = value
        for name, (attr, _) in GAUGES.items():
            self._gauges[name].set(max(0, int(getattr(self.stats, attr))))

    async def run(self, period: float = 1.0) -> None:
        while True:
            self.sync()
            await asyncio.sleep(period)

    @contextlib.asynccontextmanager
    async def running(self, period: float = 1.0):
        task = asyncio.create_task(self.run(period), name="bridge-metrics")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.sync()
