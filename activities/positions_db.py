"""Position manager's database activities: load the signal/intent/trader settings, write one
management decision per candle, and close the signal (with the trader's consecutive-loss pause).
Each is one transaction and safe to retry: unique keys and status guards make a retry a no-op."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.answer_hygiene import MAX_LEVELS, storable_int, storable_json, storable_text
from activities.db_errors import permanent_errors
from activities.model_call_rows import write_model_call
from activities.raw_answers import position_correlation, take_parked
from workflows.common import names
from workflows.position.models import (
    ClosedSignal,
    CloseSignalInput,
    ExistingPosition,
    LoadPositionInput,
    PositionContext,
    RecordDecisionInput,
    RecordedDecision,
)
from workflows.position.paper import price
from workflows.position.risk import RiskSettings


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ApplicationError(
            f"signal id {value!r} is not a UUID", type="InvalidSignalId", non_retryable=True
        ) from None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        return None
    # numeric columns written from floats carry binary noise (0.33496236000000001453...): 8 places.
    return price(d) if d.is_finite() and d > 0 else None


def _levels(raw: Any) -> list[Decimal]:
    values = raw if isinstance(raw, list) else []
    return sorted({d for d in (_decimal(v) for v in values) if d is not None and d < 100})


def _side(raw: str | None) -> str:
    return "short" if raw == "sell" else "long"


class PositionStore:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @activity.defn(name=names.LOAD_POSITION_ACTIVITY)
    async def load_position(self, input: LoadPositionInput) -> PositionContext:
        signal_id = _uuid(input.signal_id)
        with permanent_errors("load position"):
            row = await self._pool.fetchrow(
                """
                SELECT s.id, s.status, s.symbol, coalesce(s.interval, t.filter->>'interval') AS signal_interval,
                       s.price_at_signal, t.id AS found_trader_id, t.name AS trader_name, t.user_id, t.strategy,
                       t.management_interval, t.use_trailing_stop, t.trailing_stop_distance,
                       t.partial_take_profit_levels, t.max_loss_per_position, t.max_consecutive_losses,
                       extract(epoch FROM t.max_position_duration)::float8 AS max_position_seconds, t.paper_stake,
                       s.trader_id, oi.side, oi.entry_price, oi.stop_loss, oi.take_profits, a.candle_open_time,
                       (to_jsonb(t) ->> 'management_min_move_pct')::numeric AS management_min_move_pct
                FROM signals s
                LEFT JOIN traders t ON t.id = s.trader_id
                LEFT JOIN order_intents oi ON oi.signal_id = s.id
                LEFT JOIN signal_analyses a ON a.id = oi.analysis_id
                WHERE s.id = $1
                """,
                signal_id,
            )
        if row is None:
            raise ApplicationError(f"signal {signal_id} not found", type="SignalNotFound", non_retryable=True)
        found = row["found_trader_id"] is not None
        signal_interval = (row["signal_interval"] or "").strip()
        take_profits = row["take_profits"] if isinstance(row["take_profits"], list) else []
        if len(take_profits) > MAX_LEVELS:
            # An intent written before answers were bounded (or by someone else): the position's
            # state and every activity input carry the targets, so they stay within Temporal's limits.
            activity.logger.warning(
                "signal %s: order intent has %d take-profits; the first %d are kept",
                signal_id,
                len(take_profits),
                MAX_LEVELS,
            )
            take_profits = take_profits[:MAX_LEVELS]
        decided = row["candle_open_time"]
        context = PositionContext(
            signal_id=str(row["id"]),
            signal_status=row["status"],
            symbol=(row["symbol"] or "").strip().upper(),
            interval=(row["management_interval"] or signal_interval) if found else signal_interval,
            trader_found=found,
            trader_id=str(row["trader_id"]) if row["trader_id"] else None,
            trader_name=row["trader_name"],
            user_id=str(row["user_id"]) if row["user_id"] else None,
            strategy=row["strategy"] if row["strategy"] is not None else {},
            side=_side(row["side"]),
            stop_loss=_decimal(row["stop_loss"]),
            take_profits=[d for d in (_decimal(v) for v in take_profits) if d is not None],
            # Without the monitor's deciding close: the intent's entry, else the signal's price.
            reference_price=_decimal(row["entry_price"]) or _decimal(row["price_at_signal"]),
            decided_candle_t=int(decided.timestamp() * 1000) if decided else None,
        )
        context.existing = await self._existing(signal_id)
        if found:
            trailing = bool(row["use_trailing_stop"]) and row["trailing_stop_distance"] is not None
            context.risk = RiskSettings(
                use_trailing_stop=trailing,
                trailing_stop_distance=row["trailing_stop_distance"] if trailing else None,
                partial_take_profit_levels=_levels(row["partial_take_profit_levels"]),
                max_loss_per_position=row["max_loss_per_position"],
            )
            context.paper_stake = row["paper_stake"]
            context.max_position_seconds = row["max_position_seconds"]
            context.max_consecutive_losses = row["max_consecutive_losses"]
            context.management_min_move_pct = row["management_min_move_pct"]
        return context

    async def _existing(self, signal_id: uuid.UUID) -> ExistingPosition | None:
        """The signal's position row (the newest, if there were several), with the open time of its
        last managed close; None when nothing was opened for it."""
        with permanent_errors("load position"):
            row = await self._pool.fetchrow(
                """
                SELECT p.id, p.status, p.side, p.contracts, coalesce(p.initial_contracts, p.contracts) AS initial,
                       p.entry_price, p.mark_price, p.stop_loss, p.take_profit, coalesce(p.realized_pnl, 0) AS pnl,
                       coalesce(p.fees_paid, 0) AS fees, p.exit_price, p.close_reason, p.created_at,
                       (SELECT max(candle_open_time) FROM position_management_decisions d
                         WHERE d.position_id = p.id) AS last_managed
                FROM positions p WHERE p.signal_id = $1 ORDER BY p.created_at DESC LIMIT 1
                """,
                signal_id,
            )
        if row is None or row["side"] not in ("long", "short"):
            return None
        targets = (row["take_profit"] if isinstance(row["take_profit"], list) else [])[:MAX_LEVELS]
        last = row["last_managed"]
        return ExistingPosition(
            position_id=row["id"],
            status=row["status"],
            side=row["side"],
            quantity=row["contracts"],
            initial_quantity=row["initial"],
            entry_price=row["entry_price"],
            mark_price=row["mark_price"],
            stop_loss=_decimal(row["stop_loss"]),
            take_profits=[d for d in (_decimal(v) for v in targets) if d is not None],
            realized_pnl=row["pnl"],
            fees_paid=row["fees"],
            exit_price=row["exit_price"],
            close_reason=row["close_reason"],
            opened_at=row["created_at"],
            last_managed_t=int(last.timestamp() * 1000) if last else None,
        )

    @activity.defn(name=names.RECORD_POSITION_DECISION_ACTIVITY)
    async def record_position_decision(self, input: RecordDecisionInput) -> RecordedDecision:
        correlation = position_correlation(input.signal_id, int(input.candle_open_time.timestamp() * 1000))
        with permanent_errors("record position decision"):
            async with self._pool.acquire() as conn, conn.transaction():
                whole_raw = await take_parked(conn, correlation, input.raw_ai_response)
                decision_id = await self._insert_decision(conn, input, whole_raw)
                if decision_id is not None:
                    await write_model_call(conn, "position_management_decisions", decision_id, input.model_call)
            if decision_id is not None:
                return RecordedDecision(decision_id=str(decision_id), inserted=True)
            existing = await self._pool.fetchval(
                "SELECT id FROM position_management_decisions WHERE position_id = $1 AND candle_open_time = $2",
                input.position_id,
                input.candle_open_time,
            )
        return RecordedDecision(decision_id=str(existing), inserted=False)

    @staticmethod
    async def _insert_decision(conn: asyncpg.Connection, input: RecordDecisionInput, whole_raw: str | None) -> Any:
        return await conn.fetchval(
            """
            INSERT INTO position_management_decisions (
                position_id, signal_id, trader_id, user_id, "timestamp", current_pnl, current_pnl_pct,
                position_size, action, confidence, reasoning, action_details, market_price,
                risk_assessment, raw_ai_response, analysis_latency_ms, tokens_used, model_name,
                candle_open_time)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
            ON CONFLICT (position_id, candle_open_time) DO NOTHING
            RETURNING id
            """,
            input.position_id,
            uuid.UUID(input.signal_id),
            uuid.UUID(input.trader_id) if input.trader_id else None,
            uuid.UUID(input.user_id) if input.user_id else None,
            input.timestamp,
            input.current_pnl,
            input.current_pnl_pct,
            input.position_size,
            input.action,
            round(input.confidence, 2) if input.confidence is not None else None,
            storable_text(input.reasoning),
            storable_json(input.action_details),
            input.market_price,
            storable_json(input.risk_assessment),
            storable_text(whole_raw or input.raw_ai_response),
            storable_int(input.analysis_latency_ms),
            storable_int(input.tokens_used),
            storable_text(input.model_name),
            input.candle_open_time,
        )

    @activity.defn(name=names.CLOSE_SIGNAL_ACTIVITY)
    async def close_signal(self, input: CloseSignalInput) -> ClosedSignal:
        """Signal `closed` + `closed_at`; the trader's losses in a row counted once per signal
        (the status guard), and `max_consecutive_losses` of them pause the trader."""
        signal_id = _uuid(input.signal_id)
        trader_id = uuid.UUID(input.trader_id) if input.trader_id else None
        with permanent_errors("close signal"):
            async with self._pool.acquire() as conn, conn.transaction():
                status = await conn.fetchval("SELECT status FROM signals WHERE id = $1 FOR UPDATE", signal_id)
                if status is None:
                    return ClosedSignal(signal_status=None)
                if status != "in_position":
                    trader = await self._trader(conn, trader_id)
                    return ClosedSignal(signal_status=status, **trader)
                if input.status == "failed":
                    # The position could not be opened: the signal says so, and no loss is counted.
                    await conn.execute(
                        "UPDATE signals SET status = 'failed', monitor_reason = $2, updated_at = now() WHERE id = $1",
                        signal_id,
                        input.reason,
                    )
                    return ClosedSignal(signal_status="failed")
                await conn.execute(
                    """UPDATE signals SET status = 'closed', closed_at = now(), monitor_reason = $2,
                       updated_at = now() WHERE id = $1""",
                    signal_id,
                    input.reason,
                )
                if trader_id is None:
                    return ClosedSignal(signal_status="closed")
                losses = await conn.fetchval(
                    """UPDATE traders SET consecutive_losses = CASE WHEN $2 THEN consecutive_losses + 1 ELSE 0 END
                       WHERE id = $1 RETURNING consecutive_losses""",
                    trader_id,
                    input.realized_pnl < 0,
                )
                limit = input.max_consecutive_losses
                if losses is not None and limit is not None and losses >= limit:
                    await conn.execute(
                        """UPDATE traders SET paused = true, paused_at = now(), paused_reason = $2, updated_at = now()
                           WHERE id = $1 AND NOT paused""",
                        trader_id,
                        f"{losses} consecutive positions closed at a loss (max_consecutive_losses {limit})",
                    )
                trader = await self._trader(conn, trader_id)
        return ClosedSignal(signal_status="closed", **trader)

    @staticmethod
    async def _trader(conn: asyncpg.Connection, trader_id: uuid.UUID | None) -> dict[str, Any]:
        if trader_id is None:
            return {}
        row = await conn.fetchrow("SELECT consecutive_losses, paused FROM traders WHERE id = $1", trader_id)
        if row is None:
            return {}
        return {"consecutive_losses": row["consecutive_losses"], "trader_paused": row["paused"]}
