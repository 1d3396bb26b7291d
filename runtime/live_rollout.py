"""Who may place live orders, and how much: the rollout ladder in its own row (`live_rollout`,
migration 010), with per-user caps. Pure, apart from `load`; docs/rollout.md, "Live orders".

A live execution backend asks `live_verdict` before placing an entry: it is given the live
rollout, the trader and owner, the order's notional in USD and the owner's open live exposure, and
answers allowed or refused with a reason (a fixed `kind` for metrics, a sentence for the row or
log). Refusals are counted with `count_refusal` as `signal_monitor_live_orders_refused{reason}`,
which the shipped alert rule watches.

Default caps are the platform's trade-execution plan (domain.md): an internal alpha at $50 in
total, 3-5 beta users at $100 per trade and $500 in total, then 10/25/50/100 % of elite users
with limits rising to $1000. The table's `max_order_usd`/`max_total_usd` override them for
whatever step the row is on."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from runtime import metrics
from runtime.rollout import Rollout


@dataclass(frozen=True)
class Caps:
    max_order_usd: Decimal
    max_total_usd: Decimal


# (mode, up to this percent) -> caps; the first matching row applies.
DEFAULT_CAPS: tuple[tuple[str, Decimal, Caps], ...] = (
    ("off", Decimal(100), Caps(Decimal(0), Decimal(0))),
    ("traders", Decimal(100), Caps(Decimal(50), Decimal(50))),  # internal alpha: $50 total
    ("users", Decimal(100), Caps(Decimal(100), Decimal(500))),  # beta users: $100/trade, $500 total
    ("percent", Decimal(10), Caps(Decimal(100), Decimal(500))),
    ("percent", Decimal(25), Caps(Decimal(250), Decimal(750))),
    ("percent", Decimal(50), Caps(Decimal(500), Decimal(1000))),
    ("percent", Decimal(100), Caps(Decimal(1000), Decimal(1000))),
    ("all", Decimal(100), Caps(Decimal(1000), Decimal(1000))),
)


def default_caps(rollout: Rollout) -> Caps:
    for mode, up_to, caps in DEFAULT_CAPS:
        if mode == rollout.mode and (mode != "percent" or rollout.percent <= up_to):
            return caps
    raise ValueError(f"no caps for {rollout.mode}")  # unreachable: every mode has a row


@dataclass(frozen=True)
class LiveRollout:
    rollout: Rollout
    max_order_usd: Decimal | None = None
    max_total_usd: Decimal | None = None

    @property
    def caps(self) -> Caps:
        d = default_caps(self.rollout)
        return Caps(
            self.max_order_usd if self.max_order_usd is not None else d.max_order_usd,
            self.max_total_usd if self.max_total_usd is not None else d.max_total_usd,
        )


@dataclass(frozen=True)
class LiveVerdict:
    allowed: bool
    kind: str  # a metric label: allowed, not_in_rollout, over_order_cap, over_total_cap, bad_amount
    reason: str
    caps: Caps


def live_verdict(
    live: LiveRollout, trader_id: object, user_id: object, order_usd: Decimal, open_usd: Decimal
) -> LiveVerdict:
    """May this order be placed live? `open_usd`: the owner's live exposure already open."""
    caps = live.caps
    if not order_usd.is_finite() or order_usd <= 0 or not open_usd.is_finite() or open_usd < 0:
        return LiveVerdict(False, "bad_amount", f"unusable amounts (order {order_usd}, open {open_usd})", caps)
    out = live.rollout.why_not(trader_id, user_id)
    if out is not None:
        return LiveVerdict(False, "not_in_rollout", f"live orders: {out}", caps)
    if order_usd > caps.max_order_usd:
        return LiveVerdict(
            False, "over_order_cap", f"order of {order_usd} USD is over the cap of {caps.max_order_usd} per order", caps
        )
    if open_usd + order_usd > caps.max_total_usd:
        return LiveVerdict(
            False,
            "over_total_cap",
            f"{open_usd} USD open + {order_usd} USD is over the cap of {caps.max_total_usd} per user",
            caps,
        )
    return LiveVerdict(True, "allowed", "within the live rollout and its caps", caps)


async def load(conn: asyncpg.Connection) -> LiveRollout:
    """The live rollout as stored; no row (or no table) means `off`: nothing is placed live."""
    try:
        row = await conn.fetchrow(
            "SELECT mode, trader_ids, user_ids, percent, revision, max_order_usd, max_total_usd FROM live_rollout"
        )
    except asyncpg.UndefinedTableError:
        row = None
    if row is None:
        return LiveRollout(Rollout(mode="off"))
    rollout = Rollout(
        mode=row["mode"],
        trader_ids=frozenset(str(t) for t in row["trader_ids"]),
        user_ids=frozenset(str(u) for u in row["user_ids"]),
        percent=Decimal(row["percent"]),
        revision=int(row["revision"]),
    )
    return LiveRollout(rollout, row["max_order_usd"], row["max_total_usd"])


_refused = None


def count_refusal(verdict: LiveVerdict) -> None:
    """`signal_monitor_live_orders_refused{reason}`: what the `LiveOrderRefused` alert watches."""
    global _refused
    if _refused is None:
        _refused = metrics.meter().create_counter(
            metrics.PREFIX + "live_orders_refused", "live orders refused before reaching the exchange, by reason"
        )
    _refused.add(1, {"reason": verdict.kind})
