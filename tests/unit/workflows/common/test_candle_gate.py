from workflows.common import candle_gate
from workflows.common.candle_gate import MAX_CANDLE_PAYLOAD_BYTES, Refused
from workflows.common.candles import Kline

MIN = 60_000
OPEN0 = 1764068400000


def raw(n: int, **over) -> dict:
    t = OPEN0 + (n - 1) * MIN
    base = {"t": t, "T": t + MIN - 1, "s": "BTCUSDT", "i": "1m", "o": "1", "h": "1", "l": "1", "c": "1", "v": "1"}
    return {**base, "x": True, **over}


def _refused(*args: object) -> tuple[Refused, str]:
    decoded = candle_gate.decode(args)
    assert not isinstance(decoded, Kline), decoded
    return decoded


def test_decode_refuses_anything_but_one_small_kline():
    assert isinstance(candle_gate.decode((raw(1),)), Kline)
    assert _refused()[0] is Refused.MALFORMED
    assert _refused(raw(1), raw(2))[0] is Refused.MALFORMED
    assert _refused(None)[0] is Refused.MALFORMED
    assert _refused({"t": "x"})[0] is Refused.MALFORMED
    refused, why = _refused(raw(1, junk="x" * MAX_CANDLE_PAYLOAD_BYTES))
    assert refused is Refused.OVERSIZED and str(MAX_CANDLE_PAYLOAD_BYTES) in why
