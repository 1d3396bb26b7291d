"""Losing Temporal for a while loses no close: the bridge reaches Temporal through a TCP relay
the test cuts for a few seconds; the closes of the outage are retried until delivered or
superseded by a newer close of the same stream, and nothing is analysed twice."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer
from tests.bridge_support import (
    analysed_candles,
    assert_each_once,
    assert_fake_rules_kept,
    bridge_config,
    forwarded_times,
    replay_start,
    running_bridge,
)
from tests.monitor_harness import monitor_stack
from tests.support import eventually, insert_signal

KEY = ("ADAUSDT", "1m")


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


@pytest.mark.slow  # ~20-30 s (tests/README: `pytest -m "not slow"` for a quick loop)
async def test_closes_survive_a_temporal_outage(client, database_url, db, temporal_address):
    start = replay_start()  # the fake replays from here, never past the wall clock
    row = await insert_signal(db, symbol=KEY[0], interval=KEY[1], timestamp=start, max_reanalyses=100)
    relay = Relay(temporal_address)
    address = await relay.start()
    bridge_client = await Client.connect(address, namespace=client.namespace, data_converter=pydantic_data_converter)
    try:
        async with (
            FakeBinance(start=start, speed=30, auto_series=True) as fake,
            monitor_stack(client, database_url) as m,
        ):
            m.proxy.script(row.signal_id, *[Answer.wait(55) for _ in range(100)])
            handle = await m.start(row.signal_id)
            cfg = bridge_config(fake, m.task_queue, signal_timeout=1.0, retry_initial=0.5, retry_max=1.0)
            async with running_bridge(bridge_client, cfg) as stats:

                async def analysed(n):
                    times = await analysed_candles(db, row.signal_id)
                    assert len(times) >= n
                    return times

                await eventually(lambda: analysed(1), timeout=30)
                relay.cut()
                forwarded_before = len(forwarded_times(stats, *KEY))

                async def closes_during_outage():
                    assert len(forwarded_times(stats, *KEY)) >= forwarded_before + 2
                    assert stats.signal_failures >= 2
                    # The retry path ran while Temporal was still away (else a live close after the
                    # outage can supersede the failed one before its first retry).
                    assert stats.signals_retried >= 1

                await eventually(closes_during_outage, timeout=30)
                during = forwarded_times(stats, *KEY)[forwarded_before:]
                relay.down = False

                async def newest_of_outage_analysed():
                    times = await analysed_candles(db, row.signal_id)
                    assert max(during) in times or max(times) > max(during)
                    return times

                times = await eventually(newest_of_outage_analysed, timeout=30, interval=0.3)
                # Delivered or superseded: nothing left waiting.
                await eventually(lambda: _true(stats.signals_retried >= 1 and stats.delivery_backlog == 0), timeout=60)
                snap, counts = stats.snapshot(), stats.counters()
            await handle.terminate("test over")
            times = await analysed_candles(db, row.signal_id)
    finally:
        await relay.stop()

    assert_each_once(times)
    assert counts["signals_superseded"] >= 1  # older closes of the outage gave way to the newest
    assert_fake_rules_kept(fake)
    print(
        f"\ntemporal outage: closes during outage={len(during)} failures={snap['signal_failures']} "
        f"retried={snap['signals_retried']} superseded={snap['signals_superseded']} "
        f"visibility errors={snap['visibility_errors']} latency ms={snap['signal_latency_ms']}"
    )


async def _true(condition: bool) -> None:
    assert condition
