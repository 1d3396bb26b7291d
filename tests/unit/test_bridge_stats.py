"""The bridge's counters: typed ints for tests and operators, the snapshot adds summaries."""

from signal_bridge.stats import BridgeStats


def test_counters_are_the_int_fields_and_the_snapshot_adds_summaries() -> None:
    stats = BridgeStats(closes_forwarded=3, ownership_changed_at=12.5)
    stats.malformed("invalid_json")
    stats.record_latency(40.0, ("BTCUSDT", "1m"))
    counters = stats.counters()
    assert counters["closes_forwarded"] == 3 and counters["malformed_frames"] == 1
    # a float timestamp and the collections are not counters
    assert "ownership_changed_at" not in counters and "recent_forwards" not in counters
    assert all(type(v) is int for v in counters.values())
    snap = stats.snapshot()
    assert {k: snap[k] for k in counters} == counters
    assert snap["malformed_by_reason"] == {"invalid_json": 1}
    assert snap["signal_latency_ms"] == {"n": 1, "p50": 40.0, "p95": 40.0, "max": 40.0}
