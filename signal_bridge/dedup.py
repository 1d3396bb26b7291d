"""Bounded memory of the closes already forwarded, keyed by Binance's idempotency key
(symbol, interval, open time). Oldest keys are forgotten first; by then a duplicate of them (a
rotation overlap, a REST row) can no longer arrive."""

from __future__ import annotations

from collections import OrderedDict

CloseKey = tuple[str, str, int]


class SeenCloses:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[CloseKey, None] = OrderedDict()

    def add(self, key: CloseKey) -> bool:
        """True if the key is new (and remembers it), False for a duplicate."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)
