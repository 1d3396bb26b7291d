"""The whole bridge in one coroutine: running monitors (Temporal visibility) -> kline streams
(sharded WebSocket connections) -> closes (de-duplicated, REST-backfilled) -> `candle_closed`
signals. Tests run it in-process; the CLI runs it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from temporalio.client import Client

from .backfill import Backfiller
from .config import BridgeConfig
from .delivery import Delivery
from .events import emit
from .frames import stream_key, stream_name
from .monitors import MonitorDirectory
from .router import CloseRouter
from .stats import BridgeStats
from .subscriptions import SubscriptionManager

log = logging.getLogger("signal_bridge")


async def run_bridge(
    cfg: BridgeConfig,
    client: Client | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    stats: BridgeStats | None = None,
) -> BridgeStats:
    """Run until `stop` is set. `ready` is set once the first visibility refresh has been
    applied (the watched streams are being subscribed). Returns the final counters."""
    cfg.validate()
    stop = stop or asyncio.Event()
    stats = stats or BridgeStats()
    if client is None:
        from workers.temporal_client import connect_client

        client = await connect_client()

    directory = MonitorDirectory(client, cfg, stats)
    delivery = Delivery(client, cfg, stats)
    router = CloseRouter(directory, delivery, stats, cfg.dedup_capacity, cfg.missing_close_grace)
    backfiller = Backfiller(cfg, stats, router)
    router.request_backfill = backfiller.request

    def on_connected(streams: set[str], reason: str) -> None:
        # A (re)connect or restart: whatever closed while nobody listened is only on REST.
        backfiller.request({stream_key(s) for s in streams}, reason)

    subs = SubscriptionManager(cfg, stats, router.on_kline, on_connected)
    delivery.start()
    emit(
        "bridge.starting",
        ws=cfg.ws_url,
        rest=cfg.rest_url,
        refresh_s=cfg.refresh_seconds,
        streams_per_connection=cfg.streams_per_connection,
    )
    reporter = asyncio.create_task(_report(cfg, stats, stop), name="bridge-stats")
    try:
        while not stop.is_set():
            try:
                by_stream = await asyncio.wait_for(directory.refresh(), timeout=max(10.0, cfg.refresh_seconds))
            except Exception as exc:  # Temporal unreachable for a while: keep what we watch
                stats.visibility_errors += 1
                emit(
                    "bridge.visibility_failed", logging.WARNING, error=repr(exc)[:200], failures=stats.visibility_errors
                )
            else:
                subs.update(stream_name(symbol, interval) for symbol, interval in by_stream)
                delivery.forget_ended(set().union(*by_stream.values()) if by_stream else set())
                if ready is not None:
                    ready.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=cfg.refresh_seconds)
    finally:
        emit("bridge.stopping", backlog=delivery.backlog)
        await subs.stop()
        await backfiller.aclose()
        # Closes already received get a short chance to reach their monitors.
        await delivery.stop(drain_timeout=5.0)
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        _log_stats(stats, "bridge.stopped")
    return stats


async def _report(cfg: BridgeConfig, stats: BridgeStats, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=cfg.stats_seconds)
        if not stop.is_set():
            _log_stats(stats, "bridge.stats")


def _log_stats(stats: BridgeStats, event: str) -> None:
    snap = stats.snapshot()
    keys = (
        "monitors_watched",
        "streams_watched",
        "connections_open",
        "connects",
        "reconnects",
        "rotations",
        "closes_received",
        "closes_forwarded",
        "duplicates_dropped",
        "backfilled",
        "signals_sent",
        "signals_not_found",
        "signal_failures",
        "malformed_frames",
        "exchange_gaps",
    )
    emit(event, **{k: snap[k] for k in keys}, latency_ms=snap["signal_latency_ms"] or "-")
