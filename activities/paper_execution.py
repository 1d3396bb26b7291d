"""The execution backend: the one boundary between the position workflow and an exchange.

Four activities, each idempotent under the key the workflow derives (signal id + candle + action):
`open_position`, `modify_position` (stop-loss / take-profit), `reduce_position`, `close_position`.
`PaperExecution` (the default and only backend today) fills against the candle stream with the
rules of workflows/position/paper.py and writes the platform's tables: one `orders` row per fill (its id is
`paper-<key>`, so a retried or replayed call finds its own order instead of placing a second) and
the `positions` row (`paper-<signal id>`), both in one transaction. A live backend (the platform's
executor, or ccxt) would implement the same four names, taking its fills from the exchange."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db_errors import permanent_errors
from workflows.common import names
from workflows.position.models import Fill, ModifyInput, OpenedPosition, OpenPositionInput, OrderInput
from workflows.position.paper import PaperRules, fee, gross_pnl, market_fill_price, price, size_for_stake

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def position_id_for(signal_id: str) -> str:
    return f"paper-{signal_id}"


def order_id_for(key: str) -> str:
    return f"paper-{key}"


def _quote(symbol: str) -> str | None:
    return next((q for q in QUOTES if symbol.endswith(q) and len(symbol) > len(q)), None)


def _order_side(position_side: str, opening: bool) -> str:
    return "buy" if (position_side == "long") == opening else "sell"


def _fill(row: asyncpg.Record, inserted: bool) -> Fill:
    meta = row["metadata"] or {}
    return Fill(
        order_id=row["id"],
        kind=meta.get("kind", "entry"),
        price=row["average_price"],
        quantity=row["filled"],
        fee=row["fee_cost"],
        realized_pnl=Decimal(meta.get("realized_pnl", "0")),
        inserted=inserted,
    )


class PaperExecution:
    def __init__(self, pool: asyncpg.Pool, rules: PaperRules | None = None):
        self._pool = pool
        self._rules = rules or PaperRules()

    async def _insert_order(
        self, conn: asyncpg.Connection, order_id: str, signal_id: str, user_id: str, symbol: str, side: str,
        type: str, fill_price: Decimal, qty: Decimal, fee_cost: Decimal, metadata: dict[str, Any],
    ) -> bool:  # fmt: skip
        inserted = await conn.fetchval(
            """
            INSERT INTO orders (id, signal_id, user_id, symbol, side, type, status, price, average_price,
                                quantity, filled, remaining, cost, fee_currency, fee_cost, metadata)
            VALUES ($1, $2, $3, $4, $5, $6, 'closed', $7, $7, $8, $8, 0, $9, $10, $11, $12)
            ON CONFLICT (id) DO NOTHING
            RETURNING true
            """,
            order_id,
            signal_id,
            uuid.UUID(user_id),
            symbol,
            side,
            type,
            fill_price,
            qty,
            price(fill_price * qty),
            _quote(symbol),
            fee_cost,
            metadata,
        )
        return bool(inserted)

    @activity.defn(name=names.OPEN_POSITION_ACTIVITY)
    async def open_position(self, input: OpenPositionInput) -> OpenedPosition:
        fill_price = market_fill_price(input.reference_price, input.side, True, self._rules)
        qty = size_for_stake(input.stake, fill_price)
        if qty <= 0:
            raise ApplicationError(
                f"stake {input.stake} buys nothing at {fill_price}", type=names.INVALID_SIGNAL_DATA, non_retryable=True
            )
        entry_fee = fee(fill_price, qty, self._rules)
        position_id = position_id_for(input.signal_id)
        order_id = order_id_for(input.key)
        with permanent_errors("open position"):
            async with self._pool.acquire() as conn, conn.transaction():
                inserted = await self._insert_order(
                    conn, order_id, input.signal_id, input.user_id, input.symbol,
                    _order_side(input.side, True), "market", fill_price, qty, entry_fee,
                    {"mode": "paper", "key": input.key, "kind": "entry", "position_id": position_id,
                     "reference_price": str(input.reference_price), "realized_pnl": str(-entry_fee)},
                )  # fmt: skip
                if inserted:
                    await conn.execute(
                        """
                        INSERT INTO positions (id, user_id, symbol, side, contracts, initial_contracts, entry_price,
                                               mark_price, realized_pnl, fees_paid, signal_id, status, stop_loss,
                                               take_profit, mode)
                        VALUES ($1, $2, $3, $4, $5, $5, $6, $6, $7, $8, $9, 'open', $10, $11, 'paper')
                        ON CONFLICT (id) DO NOTHING
                        """,
                        position_id,
                        uuid.UUID(input.user_id),
                        input.symbol,
                        input.side,
                        qty,
                        fill_price,
                        -entry_fee,
                        entry_fee,
                        uuid.UUID(input.signal_id),
                        input.stop_loss,
                        [str(t) for t in input.take_profits],
                    )
                    activity.logger.info(
                        "paper position %s opened: %s %s at %s", position_id, qty, input.symbol, fill_price
                    )
                row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
                opened: datetime = await conn.fetchval("SELECT created_at FROM positions WHERE id = $1", position_id)
        return OpenedPosition(position_id=position_id, fill=_fill(row, inserted), opened_at=opened)

    @activity.defn(name=names.MODIFY_POSITION_ACTIVITY)
    async def modify_position(self, input: ModifyInput) -> bool:
        """Setting levels is idempotent by nature: the same values written again change nothing."""
        with permanent_errors("modify position"):
            status = await self._pool.fetchval(
                """UPDATE positions SET stop_loss = $2, take_profit = $3, updated_at = now()
                   WHERE id = $1 AND status = 'open' RETURNING status""",
                input.position_id,
                input.stop_loss,
                [str(t) for t in input.take_profits],
            )
        return status is not None

    @activity.defn(name=names.REDUCE_POSITION_ACTIVITY)
    async def reduce_position(self, input: OrderInput) -> Fill:
        return await self._exit(input)

    @activity.defn(name=names.CLOSE_POSITION_ACTIVITY)
    async def close_position(self, input: OrderInput) -> Fill:
        return await self._exit(input)

    async def _exit(self, input: OrderInput) -> Fill:
        order_id = order_id_for(input.key)
        with permanent_errors("exit position"):
            async with self._pool.acquire() as conn, conn.transaction():
                pos = await conn.fetchrow("SELECT * FROM positions WHERE id = $1 FOR UPDATE", input.position_id)
                if pos is None:
                    raise ApplicationError(
                        f"position {input.position_id} not found", type=names.POSITION_NOT_FOUND, non_retryable=True
                    )
                existing = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
                if existing is not None:
                    return _fill(existing, inserted=False)
                open_qty: Decimal = pos["contracts"]
                qty = open_qty if input.close else min(input.quantity, open_qty)
                if qty <= 0:
                    raise ApplicationError(
                        f"position {input.position_id} has nothing open", type=names.POSITION_CLOSED, non_retryable=True
                    )
                fill_price = (
                    market_fill_price(input.reference_price, input.side, False, self._rules)
                    if input.market
                    else input.reference_price
                )
                exit_fee = fee(fill_price, qty, self._rules)
                realized = gross_pnl(input.side, pos["entry_price"], fill_price, qty) - exit_fee
                order_type = "market" if input.market else ("limit" if input.kind == "take_profit" else "stop")
                await self._insert_order(
                    conn, order_id, input.signal_id, input.user_id, input.symbol,
                    _order_side(input.side, False), order_type, fill_price, qty, exit_fee,
                    {"mode": "paper", "key": input.key, "kind": input.kind, "position_id": input.position_id,
                     "reference_price": str(input.reference_price), "realized_pnl": str(realized)},
                )  # fmt: skip
                closing = input.close or qty >= open_qty
                await conn.execute(
                    """
                    UPDATE positions SET contracts = contracts - $2, realized_pnl = coalesce(realized_pnl, 0) + $3,
                        fees_paid = fees_paid + $4, mark_price = $5, updated_at = now(),
                        status = CASE WHEN $6 THEN 'closed' ELSE status END,
                        closed_at = CASE WHEN $6 THEN now() ELSE closed_at END,
                        exit_price = CASE WHEN $6 THEN $5 ELSE exit_price END,
                        close_reason = CASE WHEN $6 THEN $7 ELSE close_reason END,
                        unrealized_pnl = CASE WHEN $6 THEN 0 ELSE unrealized_pnl END
                    WHERE id = $1
                    """,
                    input.position_id,
                    qty,
                    realized,
                    exit_fee,
                    fill_price,
                    closing,
                    input.close_reason if closing else None,
                )
                row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
        activity.logger.info("paper %s %s of %s at %s", input.kind, qty, input.position_id, fill_price)
        return _fill(row, inserted=True)
