"""The real Binance frames the project ships (fakes/data), and candle "tracks" built from them.

A track is what one real candle looked like on the wire: its successive `k` snapshots, the last
one being the close. Compressed-time series reuse these tracks so prices, volumes, trade counts
and zero-trade candles are real market behaviour rather than invented numbers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
FRAMES_FILE = DATA_DIR / "binance_kline_frames.jsonl"

# Fields of `k` that move while a candle is open.
_PRICE_FIELDS = ("o", "h", "l", "c")
_VOLUME_FIELDS = ("v", "q", "V", "Q")


@dataclass(frozen=True)
class RecordedFrame:
    capture: str
    recv_ts: float
    raw: str  # the frame exactly as Binance sent it

    @property
    def stream(self) -> str | None:
        try:
            return json.loads(self.raw).get("stream")
        except ValueError:
            return None


@dataclass(frozen=True)
class Snapshot:
    """The moving values of a candle at one update (strings, as Binance sends them)."""

    o: str
    h: str
    l: str
    c: str
    v: str
    q: str
    V: str
    Q: str
    n: int
    trades_seen: bool  # False for a zero-trade candle (f = L = -1)


@lru_cache(maxsize=1)
def load_frames() -> tuple[RecordedFrame, ...]:
    frames = []
    with FRAMES_FILE.open() as fh:
        for line in fh:
            row = json.loads(line)
            frames.append(RecordedFrame(row["file"], float(row["recv_ts"]), row["raw"]))
    return tuple(frames)


def snapshot_of(k: dict) -> Snapshot:
    return Snapshot(
        o=k["o"],
        h=k["h"],
        l=k["l"],
        c=k["c"],
        v=k["v"],
        q=k.get("q", "0"),
        V=k.get("V", "0"),
        Q=k.get("Q", "0"),
        n=int(k.get("n", 0)),
        trades_seen=int(k.get("f", -1)) != -1,
    )


@lru_cache(maxsize=1)
def load_tracks() -> tuple[tuple[Snapshot, ...], ...]:
    """Real candles that were seen closing, each as its updates then its close, in capture order.

    Only spot-format tracks (decimal-string prices) that end with `x: true` are kept, so every
    track has a genuine close."""
    by_candle: dict[tuple[str, str, int], list[tuple[float, dict]]] = {}
    for frame in load_frames():
        try:
            msg = json.loads(frame.raw)
            k = msg["data"]["k"]
        except (ValueError, KeyError, TypeError):
            continue
        by_candle.setdefault((frame.capture, msg["stream"], k["t"]), []).append((frame.recv_ts, k))
    tracks = []
    for _key, items in by_candle.items():
        items.sort(key=lambda item: item[0])
        ks = [k for _, k in items]
        if ks[-1].get("x") is not True:
            continue
        tracks.append(tuple(snapshot_of(k) for k in ks))
    if not tracks:
        raise RuntimeError(f"no closed candles in {FRAMES_FILE}")
    return tuple(tracks)


@lru_cache(maxsize=1)
def recorded_levels() -> dict[str, str]:
    """SYMBOL -> the open of its first recorded closed candle, for symbols the shipped frames have."""
    levels: dict[str, str] = {}
    for frame in load_frames():
        try:
            k = json.loads(frame.raw)["data"]["k"]
        except (ValueError, KeyError, TypeError):
            continue
        if k.get("x") is True and isinstance(k.get("s"), str):
            levels.setdefault(k["s"].upper(), k["o"])
    return levels


def _scale(value: str, ratio: Decimal, quantum: Decimal) -> str:
    # One fixed number of decimals per instrument, as Binance does (the tracks come from
    # instruments with different tick sizes).
    return str((Decimal(value) * ratio).quantize(quantum))


def rebased_tracks(start_price: str | None = None) -> Iterator[tuple[Snapshot, ...]]:
    """Endless real tracks, each rescaled so that it opens at the previous close: a continuous
    price path made of real intra-candle moves. Volumes are left as recorded."""
    tracks = load_tracks()
    from .levels import tick_size

    prev_close = Decimal(start_price or tracks[0][0].o)
    quantum = tick_size(prev_close)
    for track in itertools.cycle(tracks):
        first_open = Decimal(track[0].o)
        ratio = prev_close / first_open if first_open else Decimal(1)
        # Always rescale, even by 1: one tick size for the whole series.
        track = tuple(
            Snapshot(
                **{
                    **{f: _scale(getattr(s, f), ratio, quantum) for f in _PRICE_FIELDS},
                    **{f: getattr(s, f) for f in _VOLUME_FIELDS},
                    "n": s.n,
                    "trades_seen": s.trades_seen,
                }
            )
            for s in track
        )
        prev_close = Decimal(track[-1].c)
        yield track
