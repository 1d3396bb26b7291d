"""The one backoff of every reconnect/retry loop."""

from __future__ import annotations

import random

from runtime.lifecycle import Backoff


def test_plain_backoff_doubles_up_to_its_cap_and_resets() -> None:
    b = Backoff(0.5, 30.0, jitter=False)
    assert [b.next_delay() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_jittered_backoff_stays_within_half_and_whole_of_the_capped_delay() -> None:
    b = Backoff(1.0, 60.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(10)]
    ceilings = [min(60.0, 2.0**n) for n in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert len(set(delays)) == len(delays)  # jittered: not the bare sequence
