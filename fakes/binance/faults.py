"""Faults a test can inject into the fake's streams: each is one-shot and per stream, so a test
says exactly which candle misbehaves."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

StreamKey = tuple[str, str]  # (SYMBOL, interval)


@dataclass
class Faults:
    drop_close: Counter = field(default_factory=Counter)  # close frame never sent (REST has it)
    duplicate_close: Counter = field(default_factory=Counter)  # close frame sent twice
    late_close: dict[StreamKey, list[float]] = field(default_factory=dict)  # extra real seconds
    gap: Counter = field(default_factory=Counter)  # candles that never exist (exchange outage)

    @staticmethod
    def _take(counter: Counter, key: StreamKey) -> bool:
        if counter[key] > 0:
            counter[key] -= 1
            return True
        return False

    def take_drop(self, key: StreamKey) -> bool:
        return self._take(self.drop_close, key)

    def take_duplicate(self, key: StreamKey) -> bool:
        return self._take(self.duplicate_close, key)

    def take_gap(self, key: StreamKey) -> bool:
        return self._take(self.gap, key)

    def take_late(self, key: StreamKey) -> float:
        delays = self.late_close.get(key)
        return delays.pop(0) if delays else 0.0
