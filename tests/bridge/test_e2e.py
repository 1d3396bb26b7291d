"""The bridge end to end: FakeBinance (real sockets, compressed clock) -> bridge -> a real
Temporal dev server -> the worker -> PostgreSQL, with the fake llm-proxy deciding."""

from __future__ import annotations

import asyncio
import json
import logging

from temporalio.client import WorkflowExecutionStatus

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer
from tests.helpers import bridge as bs
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal, signal_status

log = logging.getLogger("tests.bridge")

MALFORMED = [
    "not json at all",
    "[1, 2, 3]",
    json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "aggTrade", "E": 1, "s": "BTCUSDT"}}),
    json.dumps({"error": {"code": 0, "msg": "Unknown property"}, "id": None}),
    # x as a string, times as strings: wrong types, not a close
    json.dumps(
        {
            "stream": "btcusdt@kline_1m",
            "data": {
                "e": "kline",
                "E": 1,
                "s": "BTCUSDT",
                "k": {
                    "t": "1",
                    "T": "2",
                    "s": "BTCUSDT",
                    "i": "1m",
                    "o": "1",
                    "c": "1",
                    "h": "1",
                    "l": "1",
                    "v": "1",
                    "x": "true",
                },
            },
        }
    ),
    json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": 1, "s": "BTCUSDT", "k": None}}),
    json.dumps({"stream": 7, "data": []}),
]


async def test_monitor_decides_on_replayed_closes_and_survives_malformed_frames(client, database_url, db):
    start = bs.replay_start()  # the fake replays from here, never past the wall clock
    row = await insert_signal(db, symbol="BTCUSDT", interval="1m", timestamp=start)
    # speed 30: one 1m candle every 2 s, closes 0.3 virtual seconds after T, late x:false frames.
    async with FakeBinance(start=start, speed=30, auto_series=True) as fake, monitor_stack(client, database_url) as m:
        m.proxy.script(
            row.signal_id, Answer.wait(55), Answer.wait(58), Answer.wait(61), Answer.enter(86, entry=43000.0)
        )
        cfg = bs.bridge_config(fake, m.task_queue)
        async with bs.running_bridge(client, cfg) as stats:
            handle = await m.start(row.signal_id)

            async def watched():
                assert stats.streams_watched == 1 and stats.connections_open == 1
                assert fake.subscribers("btcusdt@kline_1m")

            await eventually(watched, timeout=30)

            async def first_close_forwarded():
                assert stats.closes_forwarded >= 2 and stats.signals_sent >= 1

            await eventually(first_close_forwarded, timeout=30)
            for text in MALFORMED:
                await fake.send_raw(text)
            result = await asyncio.wait_for(handle.result(), timeout=60)
            snap, counts, reasons = stats.snapshot(), stats.counters(), set(stats.malformed_by_reason)

    assert result.status == "in_position"
    assert await signal_status(db, row.signal_id) == "in_position"
    times = await bs.analysed_candles(db, row.signal_id)
    assert len(times) == 3
    bs.assert_each_once(times)
    live = set(bs.forwarded_times(stats, "BTCUSDT", "1m"))
    assert set(times) <= live
    # The bad frames were counted and skipped; the stream went on (the decision needed closes
    # after them).
    assert counts["malformed_frames"] >= len(MALFORMED) - 1, snap["malformed_by_reason"]
    assert {"invalid_json", "not_an_object", "unknown_event", "kline_bad_fields"} <= reasons
    assert counts["reconnects"] == 0
    assert counts["signal_failures"] == 0
    bs.assert_fake_rules_kept(fake)
    desc = await handle.describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    lat = snap["signal_latency_ms"]
    print(
        f"\nbridge e2e: closes received={snap['closes_received']} forwarded={snap['closes_forwarded']} "
        f"duplicates dropped={snap['duplicates_dropped']} backfilled={snap['backfilled']} "
        f"signals={snap['signals_sent']} close-to-signal latency ms={lat}"
    )
    log.info("bridge e2e figures: %s", snap)
