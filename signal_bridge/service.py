"""The whole bridge in one coroutine: running monitors (Temporal visibility) -> kline streams
(sharded WebSocket connections) -> closes (de-duplicated, REST-backfilled) -> `candle_closed`
signals. Tests run it in-process; the CLI runs it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from temporalio.client import Client

from runtime.config import BridgeSettings

from .backfill import Backfiller
from .delivery import Delivery
from .events import emit
from .frames import StreamKey, stream_key, stream_name
from .monitors import MonitorDirectory
from .ownership import BucketOwnership
from .router import CloseRouter
from .stats import BridgeStats
from .subscriptions import SubscriptionManager

log = logging.getLogger("signal_bridge")


async def run_bridge(
    cfg: BridgeSettings,
    client: Client | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    stats: BridgeStats | None = None,
) -> BridgeStats:
    """Run until `stop` is set. `ready` is set once the first visibility refresh has been
    applied (the watched streams are being subscribed). Returns the final counters."""
    cfg.check()
    stop = stop or asyncio.Event()
    stats = stats or BridgeStats()
    if client is None:
        from runtime.temporal_client import connect_client

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
    ownership = BucketOwnership(cfg, stats) if cfg.mode == "shared" else None
    if ownership is not None:
        await ownership.step()  # the first share before anything is subscribed
    delivery.start()
    emit(
        "bridge.starting",
        ws=cfg.ws_url,
        rest=cfg.rest_url,
        mode=cfg.mode,
        refresh_s=cfg.refresh_seconds,
        streams_per_connection=cfg.streams_per_connection,
    )
    reporter = asyncio.create_task(_report(cfg, stats, stop), name="bridge-stats")
    rebalancer = asyncio.create_task(ownership.run(stop), name="bridge-ownership") if ownership else None
    by_stream: dict[StreamKey, frozenset[str]] | None = None
    next_refresh = 0.0
    try:
        while not stop.is_set():
            if time.monotonic() >= next_refresh:
                try:
                    by_stream = await asyncio.wait_for(directory.refresh(), timeout=max(10.0, cfg.refresh_seconds))
                except Exception as exc:  # Temporal unreachable for a while: keep what we watch
                    stats.visibility_errors += 1
                    emit(
                        "bridge.visibility_failed",
                        logging.WARNING,
                        error=repr(exc)[:200],
                        failures=stats.visibility_errors,
                    )
                else:
                    delivery.forget_ended(set().union(*by_stream.values()) if by_stream else set())
                next_refresh = time.monotonic() + cfg.refresh_seconds
            if by_stream is not None:
                if ownership is not None:
                    ownership.changed.clear()
                sent = _sent_here(by_stream, ownership, stats)
                subs.update(stream_name(symbol, interval) for symbol, interval in sent)
                slack_ms = int((60 + cfg.missing_close_grace) * 1000)
                stats.streams_overdue = router.overdue(sent, int(time.time() * 1000), slack_ms)
                if ready is not None:
                    ready.set()
            await _wait_next(stop, ownership, next_refresh - time.monotonic())
    finally:
        emit("bridge.stopping", backlog=delivery.backlog)
        if rebalancer is not None:
            rebalancer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rebalancer
        await subs.stop()
        if ownership is not None:
            await ownership.aclose()  # after unsubscribing: the next owner's backfill covers the gap
        await backfiller.aclose()
        # Closes already received get a short chance to reach their monitors.
        await delivery.stop(drain_timeout=5.0)
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        _log_stats(stats, "bridge.stopped")
    return stats


def _sent_here(
    by_stream: dict[StreamKey, frozenset[str]], ownership: BucketOwnership | None, stats: BridgeStats
) -> list[StreamKey]:
    """The watched streams this replica sends: all of them, or in shared mode its buckets'."""
    if ownership is None:
        return list(by_stream)
    mine = [key for key in by_stream if ownership.owns(key)]
    stats.streams_not_owned = len(by_stream) - len(mine)
    return mine


async def _wait_next(stop: asyncio.Event, ownership: BucketOwnership | None, timeout: float) -> None:
    """Until the next visibility refresh, an ownership change (streams to take or give up at
    once, not at the next refresh) or the stop."""
    waits = [asyncio.ensure_future(stop.wait())]
    if ownership is not None:
        waits.append(asyncio.ensure_future(ownership.changed.wait()))
    _, pending = await asyncio.wait(waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    for fut in pending:
        fut.cancel()


async def _report(cfg: BridgeSettings, stats: BridgeStats, stop: asyncio.Event) -> None:
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
        "bridge_replicas",
        "buckets_owned",
        "streams_not_owned",
    )
    fields = {k: snap[k] for k in keys}
    fields["latency_ms"] = snap["signal_latency_ms"] or "-"
    emit(event, logging.INFO, **fields)
