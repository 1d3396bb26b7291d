"""An OHLCV series made of the shipped real candles (fakes/data), for backtests on a fresh clone.

The construction of the fake exchange's replay (`recorded.rebased_tracks`), kept here on its own
so the shipped file never changes with the replay: the recorded candles that were seen closing,
one after another on fresh open times, each rescaled so that it opens at the previous close (cents). Moves, ranges, volumes and zero-trade candles are real; the price
level and the times are not. `python -m fakes.binance.ohlcv` rewrites the shipped CSV."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

from fakes.binance.recorded import DATA_DIR, load_tracks

SAMPLE_FILE = DATA_DIR / "backtest_BTCUSDT_1m.csv"
SAMPLE_START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
SAMPLE_CANDLES = 60
HEADER = "open_time_ms,open,high,low,close,volume"


def sample_rows(
    n: int = SAMPLE_CANDLES, start_ms: int = SAMPLE_START_MS, step_ms: int = 60_000, start_price: str = "43250.00"
) -> list[list[str]]:
    rows = []
    prev_close, cent = Decimal(start_price), Decimal("0.01")
    for i, track in enumerate(itertools.islice(itertools.cycle(load_tracks()), n)):
        final = track[-1]  # the close: the candle's whole range
        first_open = Decimal(track[0].o)
        ratio = prev_close / first_open if first_open else Decimal(1)
        o, h, l, c = (str((Decimal(x) * ratio).quantize(cent)) for x in (final.o, final.h, final.l, final.c))
        rows.append([str(start_ms + i * step_ms), o, h, l, c, final.v])
        prev_close = Decimal(c)
    return rows


def sample_csv(**kwargs: object) -> str:
    return "\n".join([HEADER, *(",".join(r) for r in sample_rows(**kwargs))]) + "\n"  # type: ignore[arg-type]


def main(path: Path = SAMPLE_FILE) -> None:
    path.write_text(sample_csv())
    print(f"wrote {path} ({SAMPLE_CANDLES} candles)")


if __name__ == "__main__":
    main()
