from workflows.candles import Kline
from workflows.position_candles import classify


def k(t: int, *, s="BTCUSDT", i="1m", x=True) -> Kline:
    return Kline(t=t, T=t + 59_999, s=s, i=i, o="1", h="1", l="1", c="1", v="1", x=x)


def verdict(candle, after_t=60_000, opened_ms=None, last=None, seen=()):
    return classify(
        candle, symbol="BTCUSDT", interval="1m", after_t=after_t, opened_ms=opened_ms, last_taken_t=last,
        seen_t=list(seen),
    )  # fmt: skip


def test_rules():
    assert verdict(k(120_000)) == "accept"
    assert verdict(k(120_000, s="ETHUSDT")) == "foreign"
    assert verdict(k(120_000, i="5m")) == "foreign"
    assert verdict(k(120_000, x=False)) == "open"
    assert verdict(k(60_000)) == "stale"
    assert verdict(k(120_000, s="btcusdt")) == "accept"
    assert verdict(k(120_000), seen=[120_000]) == "duplicate"
    assert verdict(k(120_000), last=180_000) == "stale"
    assert verdict(k(0), after_t=None, opened_ms=70_000) == "stale"
    assert verdict(k(60_000), after_t=None, opened_ms=70_000) == "accept"
