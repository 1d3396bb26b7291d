"""Activities that read and write the platform's PostgreSQL: thin, idempotent, one transaction each.
Every write is safe to retry: the unique keys and status guards make a second attempt a no-op."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import activity_metrics
from workflows.models import (
    TERMINAL_SIGNAL_STATUSES,
    FinishedSignal,
    FinishSignalInput,
    LoadSignalInput,
    RecordAnalysisInput,
    RecordedAnalysis,
    SignalContext,
)

_TERMINAL = list(TERMINAL_SIGNAL_STATUSES)


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ApplicationError(f"{what} {value!r} is not a UUID", type="InvalidSignalId", non_retryable=True) from None


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def order_side(key_levels: dict[str, Any] | None) -> str:
    """The model states levels, not a side: a stop below the entry is a long (buy)."""
    levels = key_levels or {}
    for name in ("side", "direction"):
        raw = str(levels.get(name) or "").lower()
        if raw in ("buy", "long"):
            return "buy"
        if raw in ("sell", "short"):
            return "sell"
    entry, stop = levels.get("entry"), levels.get("stopLoss")
    if isinstance(entry, (int, float)) and isinstance(stop, (int, float)) and entry > 0 and stop > entry:
        return "sell"
    return "buy"


def _positive_number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _exact(value: float | None) -> Decimal | None:
    """The number as written (2307.82), not the binary float's expansion (2307.8200000000001637...):
    asyncpg turns a float into a numeric through Decimal(float)."""
    return None if value is None else Decimal(repr(value))


class SignalStore:
    """Activities over one shared asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @activity.defn
    async def load_signal(self, input: LoadSignalInput) -> SignalContext:
        signal_id = _uuid(input.signal_id, "signal id")
        row = await self._pool.fetchrow(
            """
            SELECT s.id, s.status, s.symbol, coalesce(s.interval, t.filter->>'interval') AS interval,
                   s."timestamp", s.price_at_signal, s.change_percent_at_signal, s.volume_at_signal,
                   s.indicator_data, s.trader_id, t.id AS found_trader_id, t.name AS trader_name,
                   t.user_id, t.strategy, t.max_reanalyses, t.min_confidence_to_enter,
                   extract(epoch FROM t.max_monitoring_duration)::float8 AS max_monitoring_seconds
            FROM signals s LEFT JOIN traders t ON t.id = s.trader_id
            WHERE s.id = $1
            """,
            signal_id,
        )
        if row is None:
            raise ApplicationError(f"signal {signal_id} not found", type="SignalNotFound", non_retryable=True)
        trader_found = row["found_trader_id"] is not None
        context = SignalContext(
            signal_id=str(row["id"]),
            status=row["status"],
            symbol=(row["symbol"] or "").strip().upper(),
            interval=(row["interval"] or "").strip(),
            signal_time=row["timestamp"],
            price=_float(row["price_at_signal"]),
            change_percent=_float(row["change_percent_at_signal"]),
            volume=_float(row["volume_at_signal"]),
            indicator_data=row["indicator_data"],
            trader_found=trader_found,
            trader_id=str(row["trader_id"]) if row["trader_id"] else None,
            trader_name=row["trader_name"],
            user_id=str(row["user_id"]) if row["user_id"] else None,
            strategy=row["strategy"] if row["strategy"] is not None else {},
        )
        if trader_found:
            context.max_reanalyses = row["max_reanalyses"]
            context.min_confidence_to_enter = float(row["min_confidence_to_enter"])
            context.max_monitoring_seconds = row["max_monitoring_seconds"]
        return context

    @activity.defn
    async def record_analysis(self, input: RecordAnalysisInput) -> RecordedAnalysis:
        signal_id = _uuid(input.signal_id, "signal id")
        a = input.analysis
        async with self._pool.acquire() as conn, conn.transaction():
            # The row lock orders this against an operator's cancel (finish_signal) so an order
            # intent is never recorded for a signal that has already ended.
            locked = await conn.fetchrow(
                "SELECT status, monitor_reason FROM signals WHERE id = $1 FOR UPDATE", signal_id
            )
            if locked is None:
                raise ApplicationError(f"signal {signal_id} not found", type="SignalNotFound", non_retryable=True)
            status, ended_reason = locked["status"], locked["monitor_reason"]
            analysis_id = await conn.fetchval(
                """
                INSERT INTO signal_analyses (
                    signal_id, trader_id, user_id, decision, confidence, reasoning, key_levels,
                    trade_plan, technical_indicators, raw_ai_response, analysis_latency_ms,
                    gemini_tokens_used, model_name, candle_open_time, analysis_number, monitor_decision)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                ON CONFLICT DO NOTHING
                RETURNING id
                """,
                signal_id,
                uuid.UUID(input.trader_id) if input.trader_id else None,
                uuid.UUID(input.user_id) if input.user_id else None,
                a.decision,
                round(a.confidence, 2),
                a.reasoning,
                a.key_levels,
                a.trade_plan,
                a.technical_indicators,
                a.raw_ai_response,
                a.latency_ms,
                a.tokens_used,
                a.model_name,
                input.candle_open_time,
                input.analysis_number,
                input.monitor_decision,
            )
            inserted = analysis_id is not None
            if not inserted:
                analysis_id = await conn.fetchval(
                    """SELECT id FROM signal_analyses WHERE signal_id = $1
                       AND (analysis_number = $2 OR candle_open_time IS NOT DISTINCT FROM $3 AND $3 IS NOT NULL)
                       ORDER BY analysis_number = $2 DESC LIMIT 1""",
                    signal_id,
                    input.analysis_number,
                    input.candle_open_time,
                )
                activity.logger.info(
                    "analysis %s of signal %s was already stored: not written again", input.analysis_number, signal_id
                )
            intent_id = None
            if status not in TERMINAL_SIGNAL_STATUSES and not await self._trader_exists(conn, input.trader_id):
                # The trader was deleted while its signal was monitored: the analysis happened and
                # is kept, but nothing is entered on behalf of a trader who is gone.
                ended_reason = f"trader {input.trader_id} was deleted while the signal was monitored"
                await conn.execute(
                    "UPDATE signals SET status = 'failed', monitor_reason = $2, updated_at = now() WHERE id = $1",
                    signal_id,
                    ended_reason,
                )
                status = "failed"
                activity.logger.warning("signal %s: %s", signal_id, ended_reason)
            elif status not in TERMINAL_SIGNAL_STATUSES:
                if input.monitor_decision == "enter":
                    intent_id = await self._record_order_intent(conn, signal_id, analysis_id, input)
                await conn.execute(
                    """UPDATE signals SET status = $2, monitor_reason = $3, updated_at = now() WHERE id = $1""",
                    signal_id,
                    input.new_status,
                    input.reason,
                )
                status = input.new_status
                ended_reason = None
            elif status == "in_position":
                intent_id = await conn.fetchval("SELECT id FROM order_intents WHERE signal_id = $1", signal_id)
            recorded = RecordedAnalysis(
                analysis_id=str(analysis_id),
                inserted=inserted,
                signal_status=status,
                order_intent_id=str(intent_id) if intent_id else None,
                signal_reason=ended_reason,
            )
        if inserted:  # after the commit: a rolled-back row is not an analysis
            activity_metrics.analysis_recorded(input.monitor_decision, a.decision)
        return recorded

    @staticmethod
    async def _trader_exists(conn: asyncpg.Connection, trader_id: str | None) -> bool:
        if not trader_id:
            return True  # nothing to check against (a signal loaded without a trader never gets here)
        return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM traders WHERE id = $1)", uuid.UUID(trader_id))

    @staticmethod
    async def _record_order_intent(
        conn: asyncpg.Connection, signal_id: uuid.UUID, analysis_id: uuid.UUID, input: RecordAnalysisInput
    ) -> uuid.UUID:
        levels = input.analysis.key_levels or {}
        take_profits = levels.get("takeProfit") or []
        if not isinstance(take_profits, list):
            take_profits = [take_profits]
        await conn.execute(
            """
            INSERT INTO order_intents (signal_id, analysis_id, trader_id, user_id, symbol, side,
                                       entry_price, stop_loss, take_profits, confidence)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (signal_id) DO NOTHING
            """,
            signal_id,
            analysis_id,
            uuid.UUID(input.trader_id) if input.trader_id else None,
            uuid.UUID(input.user_id) if input.user_id else None,
            input.symbol,
            order_side(levels),
            _exact(_positive_number(levels.get("entry"))),
            _exact(_positive_number(levels.get("stopLoss"))),
            [p for p in (_positive_number(tp) for tp in take_profits) if p is not None],
            round(input.analysis.confidence, 2),
        )
        return await conn.fetchval("SELECT id FROM order_intents WHERE signal_id = $1", signal_id)

    @activity.defn
    async def finish_signal(self, input: FinishSignalInput) -> FinishedSignal:
        signal_id = _uuid(input.signal_id, "signal id")
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval("SELECT status FROM signals WHERE id = $1 FOR UPDATE", signal_id)
            if status is None:
                # Deleted under us: nothing left to mark, and nothing a retry could fix.
                return FinishedSignal(signal_status=None)
            if status in TERMINAL_SIGNAL_STATUSES:
                return FinishedSignal(signal_status=status)
            await conn.execute(
                "UPDATE signals SET status = $2, monitor_reason = $3, updated_at = now() WHERE id = $1",
                signal_id,
                input.status,
                input.reason,
            )
            return FinishedSignal(signal_status=input.status)
