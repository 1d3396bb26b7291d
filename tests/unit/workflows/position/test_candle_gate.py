from tests.helpers.contexts import position_context
from workflows.common.candle_gate import RECENT_CANDLES_KEPT, Verdict, count_refused, decode_counted
from workflows.common.candles import INTERVAL_MS, Kline
from workflows.position.candle_gate import QUEUE_MAX, classify, file, receive, take
from workflows.position.candle_gate import verdict as verdict_of
from workflows.position.models import PositionCounts, PositionState, PositionStatus


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


# --- the position's own queue: file, receive, take -------------------------------------------

SIGNAL = "00000000-0000-4000-8000-000000000001"


def open_position(**kw) -> PositionState:
    values: dict = dict(
        signal_id=SIGNAL, context=position_context(signal_id=SIGNAL), status=PositionStatus.OPEN, after_t=60_000
    )
    values.update(kw)
    return PositionState(**values)


def never() -> bool:
    raise AssertionError("the patch is asked only for a close from the future")


def test_taken_closes_queue_in_open_time_order_and_repeats_are_refused():
    s = open_position()
    assert s.context is not None
    for t in (240_000, 120_000, 180_000):
        assert file(s, s.context, k(t), NOW, never) is None
    assert [q.t for q in s.queue] == [120_000, 180_000, 240_000]
    file(s, s.context, k(180_000), NOW, never)  # waiting already
    file(s, s.context, k(60_000), NOW, never)  # the deciding candle
    file(s, s.context, k(120_000, s="ETHUSDT"), NOW, never)
    assert (s.counts.duplicate, s.counts.stale, s.counts.foreign, len(s.queue)) == (1, 1, 1, 3)


def test_a_position_that_is_not_open_takes_no_close():
    s = open_position(status=PositionStatus.CLOSED)
    assert s.context is not None
    assert file(s, s.context, k(120_000), NOW, never) is None
    assert (s.counts.stale, s.queue) == (1, [])


def test_the_queue_is_bounded_dropping_the_oldest():
    s = open_position(queue=[k(120_000 + i * 60_000) for i in range(QUEUE_MAX)])
    assert s.context is not None
    file(s, s.context, k(120_000 + QUEUE_MAX * 60_000), 10**13, never)
    assert len(s.queue) == QUEUE_MAX and s.queue[0].t == 180_000 and s.counts.superseded == 1


def test_a_close_from_the_future_is_refused_only_under_the_patch():
    refused = open_position()
    assert refused.context is not None
    note = file(refused, refused.context, k(NOW + 120_000), NOW, lambda: True)
    assert note == "ignored a close from the future (open 1970-01-01 00:12 UTC)"
    assert (refused.counts.future, refused.queue) == (1, [])
    before = open_position()
    assert before.context is not None
    assert file(before, before.context, k(NOW + 120_000), NOW, lambda: False) is None
    assert [q.t for q in before.queue] == [NOW + 120_000] and before.counts.future == 0


def test_closes_before_the_position_is_open_wait_and_junk_is_counted():
    early: list[Kline] = []
    loading = PositionState(signal_id=SIGNAL)
    assert receive(loading, early, (k(120_000).model_dump(),), NOW, never) is None
    opening = open_position(status=PositionStatus.OPENING)
    assert receive(opening, early, (k(180_000).model_dump(),), NOW, never) is None
    assert [q.t for q in early] == [120_000, 180_000] and opening.queue == []
    note = receive(opening, early, (), NOW, never)
    assert note is not None and note.startswith("ignored malformed candle_closed payload")
    s = open_position()
    assert receive(s, early, (k(120_000).model_dump(),), NOW, never) is None
    assert [q.t for q in s.queue] == [120_000] and len(early) == 2 and s.counts.received == 1


def test_a_managed_close_is_remembered_and_moves_the_dedup_point_forward_only():
    s = open_position()
    take(s, k(180_000))
    take(s, k(120_000))
    take(s, k(180_000))
    assert (s.last_taken_t, s.recent_t) == (180_000, [180_000, 120_000])
    for i in range(RECENT_CANDLES_KEPT + 5):
        take(s, k(240_000 + i * 60_000))
    assert len(s.recent_t) == RECENT_CANDLES_KEPT and s.recent_t[-1] == 240_000 + (RECENT_CANDLES_KEPT + 4) * 60_000
    assert s.context is not None
    assert verdict_of(s, s.context, k(180_000), NOW) == "stale"  # older than the last managed close
