"""Shared mode's pure rebalancing: streams hash stably into buckets, replicas converge to fair
shares from any start, a dead replica's buckets are taken, nothing stays unowned."""

from __future__ import annotations

import random

from signal_bridge.buckets import bucket_of, fair_share, plan


def test_bucket_of_is_stable_and_spread():
    assert bucket_of(("BTCUSDT", "1m"), 64) == bucket_of(("BTCUSDT", "1m"), 64)
    counts = [0] * 16
    for i in range(2000):
        counts[bucket_of((f"S{i}USDT", "1m"), 16)] += 1
    assert min(counts) > 80 and max(counts) < 170, counts


def simulate(buckets: int, holdings: dict[int, set[int]], steps: int, seed: int = 1) -> list[dict[int, set[int]]]:
    """Replicas stepping one at a time in random order, each seeing the true state (as pg_locks
    would show it) and remembering what was free at its own previous step."""
    rng = random.Random(seed)
    free_before: dict[int, frozenset[int]] = {pid: frozenset() for pid in holdings}
    history = []
    for _ in range(steps):
        for pid in rng.sample(sorted(holdings), len(holdings)):
            frozen = {p: frozenset(h) for p, h in holdings.items()}
            p = plan(buckets, pid, frozen, free_before[pid])
            assert not (p.take & set().union(*(h for q, h in holdings.items() if q != pid)))
            holdings[pid] -= p.release
            holdings[pid] |= p.take
            held = set().union(*holdings.values())
            free_before[pid] = frozenset(set(range(buckets)) - held - p.release)
        history.append({p: set(h) for p, h in holdings.items()})
    return history


def assert_balanced(buckets: int, holdings: dict[int, set[int]]) -> None:
    all_held = [b for h in holdings.values() for b in h]
    assert sorted(all_held) == list(range(buckets)), "every bucket held exactly once"
    share = fair_share(buckets, len(holdings))
    assert all(len(h) <= share for h in holdings.values()), {p: len(h) for p, h in holdings.items()}
    assert all(len(h) >= buckets // len(holdings) for h in holdings.values()), {p: len(h) for p, h in holdings.items()}


def test_a_lone_replica_takes_everything():
    p = plan(64, 1, {1: frozenset()})
    assert p.take == frozenset(range(64)) and not p.release


def test_replicas_joining_converge_to_fair_shares():
    holdings = {1: set(range(64)), 2: set(), 3: set()}
    history = simulate(64, holdings, steps=4)
    assert_balanced(64, history[-1])
    # Never two holders, and never a bucket unheld for more than two steps in a row.
    for state in history:
        held = [b for h in state.values() for b in h]
        assert len(held) == len(set(held))


def test_a_dead_replicas_buckets_are_taken_within_two_steps():
    holdings = {1: set(range(0, 22)), 2: set(range(22, 43)), 3: set(range(43, 64))}
    del holdings[2]  # its session ended: its locks are free
    history = simulate(64, holdings, steps=2)
    assert sorted(b for h in history[-1].values() for b in h) == list(range(64))
    assert_balanced(64, simulate(64, history[-1], steps=3)[-1])


def test_excess_is_released_only_as_far_as_the_others_lack():
    # Replica 2 is a live member already at its share: replica 1 keeps its excess rather than
    # dropping streams nobody is ready to take.
    p = plan(4, 1, {1: frozenset({0, 1, 2}), 2: frozenset({3})})
    assert p.release == frozenset({2})
    p = plan(4, 1, {1: frozenset({0, 1}), 2: frozenset({2, 3})})
    assert not p.release and not p.take


def test_a_replica_below_the_floor_gets_one_from_a_replica_at_the_share():
    holdings = {1: set(range(0, 6)), 2: set(range(6, 12)), 3: set(range(12, 16))}
    history = simulate(16, holdings, steps=3)
    assert sorted(len(h) for h in history[-1].values()) == [5, 5, 6]


def test_a_bucket_held_by_a_closing_session_is_neither_free_nor_a_member():
    p = plan(4, 1, {1: frozenset()}, held_elsewhere=frozenset({3}))
    assert p.take == frozenset({0, 1, 2})


def test_a_bucket_free_twice_is_taken_even_beyond_the_share():
    # Replica 1 counts 2 members (the other just died before taking anything): share 2.
    p = plan(4, 1, {1: frozenset({0, 1}), 2: frozenset()}, free_before=frozenset({2, 3}))
    assert p.take == frozenset({2, 3})
