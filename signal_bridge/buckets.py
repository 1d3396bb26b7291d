"""Shared mode's pure part: which bucket a stream falls in, and what a replica should take or
release given who holds what. No I/O: `ownership.py` reads the holders from PostgreSQL's
`pg_locks` and applies the plan with advisory locks."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass


def bucket_of(stream_key: tuple[str, str], buckets: int) -> int:
    """Stable across processes and hosts (Python's own `hash` of a str is salted per process)."""
    symbol, interval = stream_key
    return zlib.crc32(f"{symbol}@{interval}".encode()) % buckets


@dataclass(frozen=True)
class Plan:
    take: frozenset[int]
    release: frozenset[int]


def fair_share(buckets: int, replicas: int) -> int:
    return math.ceil(buckets / max(1, replicas))


def plan(
    buckets: int,
    me: int,
    holdings: Mapping[int, frozenset[int]],
    free_before: frozenset[int] = frozenset(),
    held_elsewhere: frozenset[int] = frozenset(),
) -> Plan:
    """One rebalancing step of replica `me`. `holdings` maps every live replica (this one
    included, with an empty set when it holds nothing) to the buckets it holds; `free_before`
    are the buckets that were already free at this replica's previous step; `held_elsewhere`
    are held by a session that is not a live replica (one closing): not free, nobody's share.

    Below its fair share (ceil) a replica takes free buckets up to it; above, it releases as
    many of its excess as the others lack of theirs (they take them at their next step), and
    at its share it gives one up to a replica below the floor. The shares add
    up to at least `buckets`, so every free bucket has a taker; a bucket still free one step
    later (the replicas saw different counts while one joined or died) is taken by whoever sees
    it, share or not: no stream stays unowned for more than two steps."""
    mine = holdings.get(me, frozenset())
    held = frozenset().union(held_elsewhere, *holdings.values())
    free = frozenset(range(buckets)) - held
    replicas = len(holdings) or 1
    share, floor = fair_share(buckets, replicas), buckets // replicas
    # Above the share: give up what others lack of theirs. At the share: give one up to a
    # replica below the floor (6/6/4 of 16 becomes 6/5/5).
    for keep in (share, floor):
        if len(mine) > keep:
            lacking = sum(max(0, keep - len(h)) for pid, h in holdings.items() if pid != me)
            count = min(len(mine) - keep, max(0, lacking - len(free)))
            if count:
                # Highest numbers first: deterministic, so successive steps agree on what goes.
                return Plan(take=frozenset(), release=frozenset(sorted(mine, reverse=True)[:count]))
    if len(mine) > share:
        return Plan(take=frozenset(), release=frozenset())
    room = share - len(mine)
    take = set(sorted(free)[:room]) | (free & free_before)
    return Plan(take=frozenset(take), release=frozenset())
