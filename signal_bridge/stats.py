"""What the bridge has done, as plain counters (a Prometheus exporter can read them later)."""

from __future__ import annotations

import collections
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, fields


@dataclass
class BridgeStats:
    monitors_watched: int = 0
    streams_watched: int = 0
    connections_open: int = 0
    connects: int = 0
    connect_failures: int = 0
    reconnects: int = 0  # unexpected losses of a connection
    rotations: int = 0  # make-before-break replacements (age or serverShutdown)
    server_shutdowns: int = 0
    control_messages: int = 0
    subscribe_errors: int = 0
    frames: int = 0
    kline_updates: int = 0
    malformed_frames: int = 0
    closes_received: int = 0  # x == true frames (live), duplicates included
    closes_forwarded: int = 0  # distinct (symbol, interval, t) passed on to the monitors
    duplicates_dropped: int = 0
    signals_sent: int = 0
    signals_not_found: int = 0  # the monitor had just ended: normal
    signal_failures: int = 0
    signals_retried: int = 0
    signals_superseded: int = 0
    delivery_backlog: int = 0  # signals queued or waiting for a retry
    backfill_requests: int = 0
    backfilled: int = 0  # closes forwarded from REST
    replicas_fenced: int = 0  # shared mode: other replicas' sessions terminated for not beating
    backfill_missed_candles: int = 0  # missed closes not forwarded (over MAX_BACKFILL_CLOSES, or superseded)
    exchange_gaps: int = 0  # candles REST does not have either
    missing_closes_detected: int = 0
    streams_overdue: int = 0  # streams sent here whose next close is late (gauge)
    rest_rate_limited: int = 0
    rest_errors: int = 0
    visibility_refreshes: int = 0
    visibility_errors: int = 0
    # Shared mode (SIGNAL_BRIDGE_MODE=shared): live replicas seen, buckets this one holds.
    bridge_replicas: int = 0
    buckets_owned: int = 0
    ownership_changes: int = 0
    ownership_errors: int = 0
    streams_not_owned: int = 0  # watched streams another replica sends
    ownership_changed_at: float = 0.0  # local monotonic time of the last change
    malformed_by_reason: collections.Counter = field(default_factory=collections.Counter)
    # Local receipt of the close frame (or REST row) to the signal accepted by Temporal, in ms.
    signal_latency_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10_000))

    # The latest forwarded closes as (symbol, interval, open time, "ws" | "rest"): what an
    # operator or a test checks for a lost or doubled close.
    recent_forwards: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10_000))
    # Called with (ms, stream key) for each delivered signal (the Prometheus histogram).
    latency_hook: Callable[[float, tuple[str, str]], None] | None = field(default=None, repr=False)

    def record_latency(self, ms: float, key: tuple[str, str]) -> None:
        self.signal_latency_ms.append(ms)
        if self.latency_hook is not None:
            self.latency_hook(ms, key)

    def malformed(self, reason: str) -> None:
        self.malformed_frames += 1
        self.malformed_by_reason[reason] += 1

    def latency_summary(self) -> dict[str, float]:
        values = sorted(self.signal_latency_ms)
        if not values:
            return {}
        return {
            "n": len(values),
            "p50": round(statistics.median(values), 1),
            "p95": round(values[min(len(values) - 1, int(len(values) * 0.95))], 1),
            "max": round(values[-1], 1),
        }

    def counters(self) -> dict[str, int]:
        """Every plain counter by name, typed for comparisons (the snapshot mixes in summaries)."""
        out: dict[str, int] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool):
                out[f.name] = value
        return out

    def snapshot(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.counters())
        out["malformed_by_reason"] = dict(self.malformed_by_reason)
        out["signal_latency_ms"] = self.latency_summary()
        return out
