"""Activities that read and write the platform's PostgreSQL: thin, idempotent, one transaction each.
Every write is safe to retry: the unique keys and status guards make a second attempt a no-op."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import activity_metrics
from activities import signal_checks as checks
from activities.answer_hygiene import storable_int, storable_json, storable_text
from activities.db_errors import no_retry_on_permanent_errors
from activities.exact import positive_decimal, to_decimal
from activities.model_call_rows import write_model_call
from activities.platform_schema import InitialAnalysis
from activities.raw_answers import analysis_correlation, take_parked
from activities.trade_levels import incoherent_entry, order_side
from workflows.common import names
from workflows.monitor import models
from workflows.monitor.decisions import normalise_proxy_decision

# Rows the platform stored itself (llm-proxy's own insert, trigger 028's initial analysis): no
# analysis number. The monitor takes such a row over rather than storing the analysis twice.
_PLATFORM_ROW = "analysis_number IS NULL AND monitor_decision IS NULL"
# Trigger 032's `expired` (a platform row said bad_setup): the platform's reading of an analysis
# the monitor takes as its own #0 or overrides, not an end someone else decided.
EXPIRED_BY_032 = """(s.status = 'expired' AND s.monitor_reason IS NULL AND EXISTS (
    SELECT 1 FROM signal_analyses pa WHERE pa.signal_id = s.id AND pa.decision = 'bad_setup'
      AND pa.analysis_number IS NULL AND pa.monitor_decision IS NULL))"""


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ApplicationError(
            f"{what} {value!r} is not a UUID", type=names.INVALID_SIGNAL_ID, non_retryable=True
        ) from None


def _float(value: Decimal | None) -> float | None:
    # float() of a NaN/Infinity numeric (or one beyond float range) gives nan/inf: checked later.
    return None if value is None else float(value)


def _json_object(value: dict[str, Any] | None) -> dict[str, Any]:
    # The platform's key_levels and trade_plan are NOT NULL: a missing one is an empty object.
    return value if isinstance(value, dict) else {}


def _invalid(signal_id: uuid.UUID, why: str) -> ApplicationError:
    return ApplicationError(
        f"signal {signal_id} cannot be monitored: {why}"[:1000], type=names.INVALID_SIGNAL_DATA, non_retryable=True
    )


class SignalStore:
    """Activities over one shared asyncpg pool.

    `initial_analysis` is who runs analysis #0 (decided at start-up from the schema, see
    activities/platform_schema.py). With `platform_exact_elite`, a signal is left to the platform
    only when trigger 028 fires for it: its owner's profile tier is exactly 'elite' (028 compares
    case-sensitively; an upper-case or missing profile tier gets no platform analysis)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        initial_analysis: InitialAnalysis = "monitor",
        platform_grace_seconds: float = 120.0,
        platform_exact_elite: bool = False,
        analysis_retry_initial_seconds: float | None = None,
    ):
        self._pool = pool
        self._analysis_retry_initial = analysis_retry_initial_seconds
        self._initial_analysis = initial_analysis
        self._grace = platform_grace_seconds
        self._exact_elite = platform_exact_elite and initial_analysis == "platform"

    @activity.defn(name=names.LOAD_SIGNAL)
    @no_retry_on_permanent_errors
    async def load_signal(self, input: models.LoadSignalInput) -> models.SignalContext:
        signal_id = _uuid(input.signal_id, "signal id")
        platform_fires = (
            "(SELECT p.subscription_tier = 'elite' FROM user_profiles p WHERE p.id = t.user_id)"
            if self._exact_elite
            else "true"
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await self._take_signal(conn, signal_id)
            # Times come as epoch seconds and JSON only below its bound, so no value a row can hold
            # ('infinity', a 9000-year interval, a 3 MB strategy) fails decoding or the activity's
            # result: every such row gets a reason from activities/signal_checks, never a retry.
            row = await conn.fetchrow(
                f"""
                SELECT s.id, s.status, s.symbol, coalesce(s.interval, t.filter->>'interval') AS interval,
                       extract(epoch FROM s."timestamp")::float8 AS signal_epoch,
                       CASE WHEN isfinite(s."timestamp") AND s."timestamp" >= '2000-01-01+00'
                                 AND s."timestamp" < '9000-01-01+00' THEN s."timestamp" END AS signal_time,
                       s.price_at_signal, s.change_percent_at_signal, s.volume_at_signal,
                       octet_length(s.indicator_data::text) AS indicator_bytes,
                       CASE WHEN octet_length(s.indicator_data::text) <= $2 THEN s.indicator_data END
                           AS indicator_data,
                       s.trader_id, t.id AS found_trader_id, t.name AS trader_name, t.user_id,
                       octet_length(t.strategy::text) AS strategy_bytes,
                       CASE WHEN octet_length(t.strategy::text) <= $2 THEN t.strategy END AS strategy,
                       t.max_reanalyses, t.min_confidence_to_enter,
                       -- migration 008's, read so that a database without it loads (the gate is off)
                       (to_jsonb(t) ->> 'min_price_move_pct')::float8 AS min_price_move_pct,
                       extract(epoch FROM t.max_monitoring_duration)::float8 AS max_monitoring_seconds,
                       {EXPIRED_BY_032} AS expired_by_032,
                       coalesce({platform_fires}, false) AS platform_fires
                FROM signals s LEFT JOIN traders t ON t.id = s.trader_id
                WHERE s.id = $1
                """,
                signal_id,
                checks.MAX_JSON_BYTES,
            )
        if row is None:
            raise ApplicationError(f"signal {signal_id} not found", type=names.SIGNAL_NOT_FOUND, non_retryable=True)
        trader_found = row["found_trader_id"] is not None
        raw = checks.RawSignal(
            symbol=row["symbol"],
            signal_epoch=row["signal_epoch"],
            price=_float(row["price_at_signal"]),
            change_percent=_float(row["change_percent_at_signal"]),
            volume=_float(row["volume_at_signal"]),
            indicator_bytes=row["indicator_bytes"],
            trader_found=trader_found,
            strategy_bytes=row["strategy_bytes"],
            max_reanalyses=row["max_reanalyses"],
            min_confidence_to_enter=_float(row["min_confidence_to_enter"]),
            max_monitoring_seconds=row["max_monitoring_seconds"],
        )
        # "Now" is the Temporal server's (when this attempt was scheduled): the wall clock in
        # production, the skipped-ahead clock of a backtest on the time-skipping server.
        found = checks.problems(raw, activity.info().current_attempt_scheduled_time.timestamp())
        if found:
            raise _invalid(signal_id, "; ".join(found))
        platform = self._initial_analysis == "platform" and row["platform_fires"]
        try:
            context = models.SignalContext(
                signal_id=str(row["id"]),
                # 032's expiry is not an end: the monitor takes that analysis as #0 or overrides it.
                status="monitoring" if row["expired_by_032"] else row["status"],
                symbol=(row["symbol"] or "").strip().upper(),
                interval=(row["interval"] or "").strip(),
                signal_time=row["signal_time"],
                price=raw.price,
                change_percent=raw.change_percent,
                volume=raw.volume,
                indicator_data=row["indicator_data"],
                trader_found=trader_found,
                trader_id=str(row["trader_id"]) if row["trader_id"] else None,
                trader_name=row["trader_name"],
                user_id=str(row["user_id"]) if row["user_id"] else None,
                strategy=row["strategy"] if row["strategy"] is not None else {},
                initial_analysis="platform" if platform else "monitor",
                platform_grace_seconds=self._grace,
                analysis_retry_initial_seconds=self._analysis_retry_initial,
            )
            if trader_found:
                context.max_reanalyses = row["max_reanalyses"]
                context.min_confidence_to_enter = float(row["min_confidence_to_enter"])
                context.max_monitoring_seconds = row["max_monitoring_seconds"]
                context.min_price_move_pct = row["min_price_move_pct"]
        except ValidationError as exc:
            # Whatever the checks above did not foresee is still data no retry can change.
            where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise _invalid(signal_id, where) from None
        return context

    @staticmethod
    async def _take_signal(conn: asyncpg.Connection, signal_id: uuid.UUID) -> None:
        # From now on the monitor alone sets this signal's status (migration 005's guard).
        await conn.execute(
            "UPDATE signals SET monitor_started_at = now() WHERE id = $1 AND monitor_started_at IS NULL",
            signal_id,
        )

    @activity.defn(name=names.FIND_PLATFORM_ANALYSIS)
    @no_retry_on_permanent_errors
    async def find_platform_analysis(self, input: models.FindPlatformAnalysisInput) -> models.Analysis | None:
        """The platform's own analysis of this signal (trigger 028's, stored by llm-proxy), the
        earliest one nobody has taken yet; None while there is none. A row the monitor could not
        use as an answer (unknown decision, empty reasoning) counts as none."""
        signal_id = _uuid(input.signal_id, "signal id")
        row = await self._pool.fetchrow(
            f"""SELECT id, decision, confidence, reasoning, key_levels, trade_plan, technical_indicators,
                       raw_ai_response, analysis_latency_ms, gemini_tokens_used, model_name,
                       (SELECT price_at_signal FROM signals WHERE id = $1) AS price_at_signal
                FROM signal_analyses WHERE signal_id = $1 AND {_PLATFORM_ROW}
                ORDER BY created_at, id LIMIT 1""",
            signal_id,
        )
        if row is None:
            return None
        decision = normalise_proxy_decision(row["decision"])
        confidence = row["confidence"]
        reasoning = (row["reasoning"] or "").strip()
        if decision is None or confidence is None or not 0 <= confidence <= 100 or not reasoning:
            activity.logger.warning("signal %s: the platform's analysis %s is unusable; ignored", signal_id, row["id"])
            return None
        if decision == "enter_trade" and (why := incoherent_entry(row["key_levels"], row["price_at_signal"])):
            activity.logger.warning(
                "signal %s: the platform's analysis %s is no trade (%s); ignored", signal_id, row["id"], why
            )
            return None

        def obj(value: Any) -> dict[str, Any] | None:
            return value if isinstance(value, dict) else None

        return models.Analysis(
            decision=decision,
            confidence=float(confidence),
            reasoning=reasoning,
            key_levels=obj(row["key_levels"]),
            trade_plan=obj(row["trade_plan"]),
            technical_indicators=obj(row["technical_indicators"]),
            raw_ai_response=row["raw_ai_response"],
            latency_ms=row["analysis_latency_ms"] or 0,
            tokens_used=row["gemini_tokens_used"],
            model_name=row["model_name"],
            row_id=str(row["id"]),
        )

    @activity.defn(name=names.RECORD_ANALYSIS)
    @no_retry_on_permanent_errors
    async def record_analysis(self, input: models.RecordAnalysisInput) -> models.RecordedAnalysis:
        signal_id = _uuid(input.signal_id, "signal id")
        a = input.analysis
        async with self._pool.acquire() as conn, conn.transaction():
            # The row lock orders this against an operator's cancel (finish_signal) so an order
            # intent is never recorded for a signal that has already ended.
            # The trader's existence is read in the same statement (one round trip fewer per candle).
            locked = await conn.fetchrow(
                f"""SELECT s.status, s.monitor_reason, {EXPIRED_BY_032} AS expired_by_032,
                           $2::uuid IS NULL OR EXISTS (SELECT 1 FROM traders t WHERE t.id = $2) AS trader_exists
                    FROM signals s WHERE s.id = $1 FOR UPDATE""",
                signal_id,
                uuid.UUID(input.trader_id) if input.trader_id else None,
            )
            if locked is None:
                raise ApplicationError(f"signal {signal_id} not found", type=names.SIGNAL_NOT_FOUND, non_retryable=True)
            status, ended_reason = locked["status"], locked["monitor_reason"]
            ended = status in models.TERMINAL_SIGNAL_STATUSES and not locked["expired_by_032"]
            analysis_id, inserted, taken_over = await self._store_analysis(conn, signal_id, input)
            intent_id = None
            if not ended and not locked["trader_exists"]:
                # The trader was deleted while its signal was monitored: the analysis happened and
                # is kept, but nothing is entered on behalf of a trader who is gone.
                ended_reason = f"trader {input.trader_id} was deleted while the signal was monitored"
                await self._set_status(conn, signal_id, "failed", ended_reason)
                status = "failed"
                activity.logger.warning("signal %s: %s", signal_id, ended_reason)
            elif not ended:
                if input.monitor_decision == "enter":
                    intent_id = await self._record_order_intent(conn, signal_id, analysis_id, input)
                await self._set_status(conn, signal_id, input.new_status, input.reason)
                status = input.new_status
                ended_reason = None
            elif status == "in_position":
                intent_id = await conn.fetchval("SELECT id FROM order_intents WHERE signal_id = $1", signal_id)
            recorded = models.RecordedAnalysis(
                analysis_id=str(analysis_id),
                inserted=inserted,
                taken_over=taken_over,
                signal_status=status,
                order_intent_id=str(intent_id) if intent_id else None,
                signal_reason=ended_reason,
            )
        if inserted:  # after the commit: a rolled-back row is not an analysis
            activity_metrics.analysis_recorded(input.monitor_decision, a.decision)
        return recorded

    @staticmethod
    async def _store_analysis(
        conn: asyncpg.Connection, signal_id: uuid.UUID, input: models.RecordAnalysisInput
    ) -> tuple[uuid.UUID, bool, bool]:
        """One row per analysis: (row id, stored by this call, an existing platform row taken over).
        Order matters: a retry finds its own row first; then the platform's row for this answer
        (llm-proxy stores one per call, before it answers); only then a new row."""
        a = input.analysis
        candle = input.candle_open_time
        existing = await conn.fetchval(
            """SELECT id FROM signal_analyses WHERE signal_id = $1
               AND (analysis_number = $2 OR candle_open_time IS NOT DISTINCT FROM $3 AND $3 IS NOT NULL)
               ORDER BY analysis_number = $2 DESC LIMIT 1""",
            signal_id,
            input.analysis_number,
            candle,
        )
        if existing is not None:
            activity.logger.info(
                "analysis %s of signal %s was already stored: not written again", input.analysis_number, signal_id
            )
            return existing, False, False
        confidence = to_decimal(round(a.confidence, 2))
        if a.row_id is not None:
            platform_row = await conn.fetchval(
                f"SELECT id FROM signal_analyses WHERE id = $1 AND signal_id = $2 AND {_PLATFORM_ROW} FOR UPDATE",
                _uuid(a.row_id, "analysis id"),
                signal_id,
            )
        else:
            # The proxy's row for this very answer: same decision, confidence and reasoning.
            platform_row = await conn.fetchval(
                f"""SELECT id FROM signal_analyses
                    WHERE signal_id = $1 AND {_PLATFORM_ROW} AND decision = $2 AND confidence = $3
                      AND btrim(reasoning, E' \\t\\r\\n') = $4
                    ORDER BY created_at DESC, id LIMIT 1 FOR UPDATE""",
                signal_id,
                a.decision,
                confidence,
                storable_text(a.reasoning),
            )
        if platform_row is not None:
            # An UPDATE: trigger 032 fires on INSERT only, so taking the row over changes no status.
            await conn.execute(
                """UPDATE signal_analyses SET analysis_number = $2, candle_open_time = $3, monitor_decision = $4,
                       key_levels = coalesce(key_levels, '{}'::jsonb), trade_plan = coalesce(trade_plan, '{}'::jsonb),
                       updated_at = now()
                   WHERE id = $1""",
                platform_row,
                input.analysis_number,
                candle,
                input.monitor_decision,
            )
            return platform_row, True, True
        whole_raw = await take_parked(
            conn, analysis_correlation(str(signal_id), input.analysis_number), a.raw_ai_response
        )
        analysis_id = await conn.fetchval(
            """
            INSERT INTO signal_analyses (
                signal_id, trader_id, user_id, decision, confidence, reasoning, key_levels,
                trade_plan, technical_indicators, raw_ai_response, analysis_latency_ms,
                gemini_tokens_used, model_name, candle_open_time, analysis_number, monitor_decision)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
            RETURNING id
            """,
            signal_id,
            uuid.UUID(input.trader_id) if input.trader_id else None,
            uuid.UUID(input.user_id) if input.user_id else None,
            a.decision,
            confidence,
            storable_text(a.reasoning),
            storable_json(_json_object(a.key_levels)),
            storable_json(_json_object(a.trade_plan)),
            storable_json(a.technical_indicators),
            storable_text(whole_raw or a.raw_ai_response),
            storable_int(a.latency_ms),
            storable_int(a.tokens_used),
            storable_text(a.model_name),
            candle,
            input.analysis_number,
            input.monitor_decision,
        )
        await write_model_call(conn, "signal_analyses", analysis_id, a.model_call)
        return analysis_id, True, False

    @staticmethod
    async def _set_status(conn: asyncpg.Connection, signal_id: uuid.UUID, status: str, reason: str | None) -> None:
        # closed_at set by 032's expiry is cleared when the monitor's decision is not an end of that kind.
        await conn.execute(
            """UPDATE signals SET status = $2, monitor_reason = $3, updated_at = now(),
                   closed_at = CASE WHEN $2 IN ('expired', 'cancelled', 'failed', 'closed') THEN closed_at END
               WHERE id = $1""",
            signal_id,
            status,
            reason,
        )

    @staticmethod
    async def _record_order_intent(
        conn: asyncpg.Connection, signal_id: uuid.UUID, analysis_id: uuid.UUID, input: models.RecordAnalysisInput
    ) -> uuid.UUID:
        levels = input.analysis.key_levels or {}
        take_profits = levels.get("takeProfit") or []
        if not isinstance(take_profits, list):
            take_profits = [take_profits]
        # Decimals all the way: a float would reach `numeric` as its binary expansion.
        await conn.execute(
            """
            INSERT INTO order_intents (signal_id, analysis_id, trader_id, user_id, symbol, side,
                                       entry_price, stop_loss, take_profits, confidence)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10)
            ON CONFLICT (signal_id) DO NOTHING
            """,
            signal_id,
            analysis_id,
            uuid.UUID(input.trader_id) if input.trader_id else None,
            uuid.UUID(input.user_id) if input.user_id else None,
            input.symbol,
            order_side(levels),
            positive_decimal(levels.get("entry")),
            positive_decimal(levels.get("stopLoss")),
            "[" + ", ".join(str(p) for p in (positive_decimal(tp) for tp in take_profits) if p is not None) + "]",
            to_decimal(round(input.analysis.confidence, 2)),
        )
        return await conn.fetchval("SELECT id FROM order_intents WHERE signal_id = $1", signal_id)

    @activity.defn(name=names.FINISH_SIGNAL)
    @no_retry_on_permanent_errors
    async def finish_signal(self, input: models.FinishSignalInput) -> models.FinishedSignal:
        signal_id = _uuid(input.signal_id, "signal id")
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchrow(
                f"""SELECT s.status, {EXPIRED_BY_032} AS expired_by_032, s.monitor_leave_reason
                    FROM signals s WHERE s.id = $1 FOR UPDATE""",
                signal_id,
            )
            if locked is None:
                # Deleted under us: nothing left to mark, and nothing a retry could fix.
                return models.FinishedSignal(signal_status=None)
            if locked["status"] in models.TERMINAL_SIGNAL_STATUSES and not locked["expired_by_032"]:
                return models.FinishedSignal(signal_status=locked["status"])
            reason = input.reason
            if input.status == "cancelled" and locked["monitor_leave_reason"]:
                # The intake cancelled it because the signal is no longer wanted: say why.
                reason = locked["monitor_leave_reason"]
            await self._set_status(conn, signal_id, input.status, reason)
            return models.FinishedSignal(signal_status=input.status)
