from datetime import UTC, datetime

from tests.helpers.contexts import signal_context
from workflows.common.candle_gate import RECENT_CANDLES_KEPT, Verdict
from workflows.common.candles import Kline
from workflows.monitor import candle_gate
from workflows.monitor.models import MonitorResult, MonitorState, SignalContext

MIN = 60_000
SIGNAL_MS = 1764068400000 + 30_000  # 2025-11-25 11:00:30 UTC, inside the 11:00 candle
OPEN0 = 1764068400000
NOW = OPEN0 + 10 * MIN


def ctx() -> SignalContext:
    return signal_context(signal_time=datetime.fromtimestamp(SIGNAL_MS / 1000, tz=UTC))


def raw(n: int, **over) -> dict:
    t = OPEN0 + (n - 1) * MIN
    base = {"t": t, "T": t + MIN - 1, "s": "BTCUSDT", "i": "1m", "o": "1", "h": "1", "l": "1", "c": "1", "v": "1"}
    return {**base, "x": True, **over}


def kl(n: int, **over) -> Kline:
    return Kline.model_validate(raw(n, **over))


def test_classification_of_each_kind():
    s, c = MonitorState(), ctx()
    assert candle_gate.classify(s, c, kl(1, s="ETHUSDT"), NOW) is Verdict.FOREIGN
    assert candle_gate.classify(s, c, kl(1, i="5m", T=OPEN0 + 5 * MIN - 1), NOW) is Verdict.FOREIGN
    assert candle_gate.classify(s, c, kl(1, x=False), NOW) is Verdict.OPEN
    assert candle_gate.classify(s, c, kl(0), NOW) is Verdict.STALE  # closed before the signal
    assert candle_gate.classify(s, c, kl(1), NOW) is Verdict.TAKE
    assert candle_gate.classify(s, c, kl(1, s="btcusdt"), NOW) is Verdict.TAKE  # lower case is the same symbol


def test_a_close_from_the_future_is_refused_and_moves_nothing():
    s, c = MonitorState(), ctx()
    future = kl(13)  # opens at NOW + 2 min: more than one interval ahead
    assert candle_gate.classify(s, c, kl(12), NOW) is Verdict.TAKE  # exactly now + one interval
    assert candle_gate.classify(s, c, future, NOW) is Verdict.FUTURE
    candle_gate.admit(s, future, Verdict.FUTURE)
    assert s.counts.future == 1 and s.pending is None and s.recent_t == [] and s.last_taken_t is None
    # The rule before the patch took it.
    assert candle_gate.classify(s, c, future, NOW, check_future=False) is Verdict.TAKE


def test_newest_waits_older_ones_are_skipped_and_repeats_are_duplicates():
    s, c = MonitorState(), ctx()
    for n in (3, 2, 5, 4):
        k = kl(n)
        candle_gate.admit(s, k, candle_gate.classify(s, c, k, NOW))
    assert s.pending is not None and s.pending.t == kl(5).t
    assert s.counts.skipped == 3 and sorted(s.skipped_t) == sorted(kl(n).t for n in (2, 3, 4))
    again = kl(4)
    assert candle_gate.classify(s, c, again, NOW) is Verdict.DUPLICATE
    candle_gate.take(s, s.pending)
    s.pending = None
    assert candle_gate.classify(s, c, kl(5), NOW) is Verdict.DUPLICATE
    old = kl(1)
    assert candle_gate.classify(s, c, old, NOW) is Verdict.BEHIND
    candle_gate.admit(s, old, Verdict.BEHIND)
    assert s.counts.stale == 1 and old.t in s.recent_t
    assert candle_gate.classify(s, c, kl(1), NOW) is Verdict.DUPLICATE


def test_after_the_end_every_close_is_stale():
    s = MonitorState()
    s.result = MonitorResult(signal_id="s", status="expired", reason="r", analyses=1, reanalyses=0, counts=s.counts)
    assert candle_gate.classify(s, ctx(), kl(2), NOW) is Verdict.STALE


def test_memory_is_bounded():
    s = MonitorState()
    for t in range(200):
        candle_gate.remember(s, t)
        candle_gate.skip(s, t)
    assert len(s.recent_t) == RECENT_CANDLES_KEPT and len(s.skipped_t) == candle_gate.SKIPPED_KEPT
