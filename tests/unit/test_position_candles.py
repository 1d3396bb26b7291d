from workflows.candle_gate import Verdict, count_refused, decode_counted
from workflows.candles import INTERVAL_MS, Kline
from workflows.position_candles import classify
from workflows.position_models import PositionCounts


def k(t: int, *, s="BTCUSDT", i="1m", x=True) -> Kline:
    return Kline(t=t, T=t + (INTERVAL_MS[i] or 60_000) - 1, s=s, i=i, o="1", h="1", l="1", c="1", v="1", x=x)


NOW = 10 * 60_000


def verdict(candle, after_t=60_000, opened_ms=None, last=None, seen=(), now=NOW, check_future=True):
    return classify(
        candle, symbol="BTCUSDT", interval="1m", after_t=after_t, opened_ms=opened_ms, last_taken_t=last,
        seen_t=list(seen), now_ms=now, check_future=check_future,
    )  # fmt: skip


def test_rules():
    assert verdict(k(120_000)) == "take"
    assert verdict(k(120_000, s="ETHUSDT")) == "foreign"
    assert verdict(k(120_000, i="5m")) == "foreign"
    assert verdict(k(120_000, x=False)) == "open"
    assert verdict(k(60_000)) == "stale"
    assert verdict(k(120_000, s="btcusdt")) == "take"
    assert verdict(k(120_000), seen=[120_000]) == "duplicate"
    assert verdict(k(120_000), last=180_000) == "stale"
    assert verdict(k(0), after_t=None, opened_ms=70_000) == "stale"
    assert verdict(k(60_000), after_t=None, opened_ms=70_000) == "take"


def test_a_close_from_the_future_is_refused_as_the_monitor_refuses_it():
    # One interval ahead of now is the latest a real close can open (clock skew, a late bridge).
    assert verdict(k(NOW + 60_000)) == "take"
    assert verdict(k(NOW + 120_000)) == "future"
    assert verdict(k(NOW + 120_000), check_future=False) == "take"
    # Foreign and stale come first, as in the monitor's gate.
    assert verdict(k(NOW + 120_000, s="ETHUSDT")) == "foreign"


def test_the_gate_counts_every_refusal_under_its_name():
    counts = PositionCounts()
    for v in ("foreign", "open", "future", "duplicate", "stale", "behind", "take"):
        if v != "take":
            count_refused(counts, Verdict(v))
    assert (counts.foreign, counts.open, counts.future, counts.duplicate, counts.stale) == (1, 1, 1, 1, 2)


def test_payloads_are_decoded_and_counted_by_the_monitors_gate():
    counts = PositionCounts()
    good = k(120_000).model_dump()
    assert isinstance(decode_counted(counts, (good,)), Kline)
    assert "malformed" in str(decode_counted(counts, ()))
    assert "malformed" in str(decode_counted(counts, (good, good)))
    assert "malformed" in str(decode_counted(counts, ({**good, "t": good["T"] + 1},)))
    assert "oversized" in str(decode_counted(counts, ({**good, "junk": "x" * 10_000},)))
    assert (counts.received, counts.malformed, counts.oversized) == (5, 3, 1)
