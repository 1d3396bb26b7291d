"""Where a signal is in its whole life, for `list`, `status` and `positions`: the signal row's
status (the monitor writes it until it enters, the position manager after: `in_position` while
the position is open, `closed` once it is closed) and the position's own row.

Why the database row and not a search attribute: a monitor's `MonitorStatus` is frozen at
`in_position` when it ends (a closed workflow's attributes cannot change), and the position
manager keeps its own `PositionStatus`; the signal row is the one place both write, and what
`history` already shows. Without a database the commands fall back to the search attributes and
say so."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from cli.text import Amount
from workflows.position.paper import gross_pnl

# The monitor's `MonitorStatus` a signal in each later status was left with: a `closed` signal's
# monitor ended `in_position`; a position that could not be opened makes the signal `failed`.
MONITOR_STATUS_BEHIND = {"closed": ("in_position",), "failed": ("failed", "in_position")}


def monitor_statuses_for(status: str) -> tuple[str, ...]:
    """The `MonitorStatus` values a signal now in `status` can carry (a visibility query's filter)."""
    return MONITOR_STATUS_BEHIND.get(status, (status,))


class PositionFacts(BaseModel):
    position_id: str
    status: str  # open | closed
    mode: str  # paper | live
    side: str  # long | short
    entry_price: Amount = Field(description="the entry fill's price")
    size: Amount = Field(description="the size at the entry")
    open_size: Amount = Field(description="what is still open (after partial exits)")
    stop_loss: Amount | None
    take_profits: list[Amount]
    exit_price: Amount | None
    close_reason: str | None
    realized_pnl: Amount = Field(description="after every fill's fee, the entry's included")
    fees_paid: Amount
    last_price: Amount | None = Field(description="the last managed candle's close, else the last fill")
    opened_at: datetime | None
    closed_at: datetime | None

    @property
    def unrealized_pnl(self) -> Decimal | None:
        """From the last close, on what is still open (None once closed or with no price yet)."""
        if self.status != "open" or self.last_price is None:
            return None
        return gross_pnl("short" if self.side == "short" else "long", self.entry_price, self.last_price, self.open_size)


class SignalFacts(BaseModel):
    signal_id: str
    status: str | None
    monitor_reason: str | None
    position: PositionFacts | None = None


def _levels(raw: Any) -> list[Decimal]:
    values = json.loads(raw) if isinstance(raw, str) else raw
    out = []
    for v in values if isinstance(values, list) else []:
        try:
            out.append(Decimal(str(v)))
        except ArithmeticError:
            continue
    return out


async def signal_facts(database_url: str | None, signal_ids: list[str]) -> dict[str, SignalFacts] | None:
    """signal id -> its row's status and its position; None when there is no database to ask."""
    ids = []
    for s in signal_ids:
        try:
            ids.append(uuid.UUID(s))
        except ValueError:
            continue
    if not database_url:
        return None
    if not ids:
        return {}
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        rows = await conn.fetch(
            """SELECT s.id, s.status, s.monitor_reason, p.id AS position_id, p.status AS position_status, p.mode,
                      p.side, p.entry_price, coalesce(p.initial_contracts, p.contracts) AS size, p.contracts,
                      p.stop_loss, p.take_profit, p.exit_price, p.close_reason, p.realized_pnl, p.fees_paid,
                      p.created_at AS opened_at, p.closed_at,
                      coalesce(d.market_price, p.mark_price) AS last_price
               FROM signals s
               LEFT JOIN positions p ON p.signal_id = s.id
               LEFT JOIN LATERAL (
                   SELECT market_price FROM position_management_decisions
                   WHERE position_id = p.id ORDER BY candle_open_time DESC NULLS LAST LIMIT 1
               ) d ON true
               WHERE s.id = ANY($1::uuid[])""",
            ids,
        )
    except asyncpg.PostgresError:
        return None  # a database without the position tables: the attributes are all there is
    finally:
        await conn.close()
    facts = {}
    for r in rows:
        position = None
        if r["position_id"] is not None:
            position = PositionFacts(
                position_id=r["position_id"],
                status=r["position_status"],
                mode=r["mode"],
                side=r["side"],
                entry_price=r["entry_price"],
                size=r["size"],
                open_size=r["contracts"],
                stop_loss=r["stop_loss"],
                take_profits=_levels(r["take_profit"]),
                exit_price=r["exit_price"],
                close_reason=r["close_reason"],
                realized_pnl=r["realized_pnl"] or Decimal(0),
                fees_paid=r["fees_paid"] or Decimal(0),
                last_price=r["last_price"],
                opened_at=r["opened_at"],
                closed_at=r["closed_at"],
            )
        facts[str(r["id"])] = SignalFacts(
            signal_id=str(r["id"]), status=r["status"], monitor_reason=r["monitor_reason"], position=position
        )
    return facts
