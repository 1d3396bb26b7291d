"""Shadow mode (SIGNAL_MONITOR_SHADOW=on): the same activity names as activities/signals_db and
position_starter, so the monitor's workflow code runs unchanged, but nothing is written to
`signals` or `signal_analyses`, no position is started and no order placed. Each analysis goes to
`shadow_analyses` with the platform's own decision for the signal when it has one; each end to
`shadow_intake` (migration 010). Analysis #0 is always the monitor's own (the worker forces
`initial_analysis=monitor`), so the two decisions can be compared.

What shadow mode cannot keep out: the production llm-proxy stores a `signal_analyses` row per
call by itself (and trigger 032 sets the status from it) until it skips callers sending
`x-trigger-source: monitoring-worker` (README, "What the platform should change next")."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from temporalio import activity

from activities.answer_hygiene import storable_int, storable_json, storable_text
from activities.db_errors import no_retry_on_permanent_errors
from activities.exact import to_decimal
from activities.signals_db import SignalStore, _json_object, _uuid
from workflows.common import names
from workflows.monitor.models import (
    TERMINAL_SIGNAL_STATUSES,
    FinishedSignal,
    FinishSignalInput,
    RecordAnalysisInput,
    RecordedAnalysis,
    StartedPosition,
    StartPositionInput,
)

# The platform's own analysis of a signal: a row it stored (no analysis number), other than the
# rows llm-proxy stored for the shadow monitor's own calls (same decision, confidence, reasoning).
PLATFORM_DECISION = """
SELECT pa.id, pa.decision, pa.confidence FROM signal_analyses pa
WHERE pa.signal_id = $1 AND pa.analysis_number IS NULL AND pa.monitor_decision IS NULL
  AND NOT EXISTS (SELECT 1 FROM shadow_analyses sh WHERE sh.signal_id = pa.signal_id
                  AND sh.decision = pa.decision AND sh.confidence = pa.confidence
                  AND sh.reasoning = btrim(pa.reasoning, E' \\t\\r\\n'))
  AND NOT (pa.decision = $2 AND pa.confidence = $3 AND btrim(pa.reasoning, E' \\t\\r\\n') = $4)
ORDER BY pa.created_at, pa.id LIMIT 1"""


class ShadowSignalStore(SignalStore):
    @staticmethod
    async def _take_signal(conn: asyncpg.Connection, signal_id: uuid.UUID) -> None:
        """The platform keeps the signal: no monitor_started_at, its trigger 032 goes on."""

    @activity.defn(name=names.RECORD_ANALYSIS)
    @no_retry_on_permanent_errors
    async def record_analysis(self, input: RecordAnalysisInput) -> RecordedAnalysis:
        signal_id = _uuid(input.signal_id, "signal id")
        a = input.analysis
        confidence = to_decimal(round(a.confidence, 2))
        reasoning = storable_text(a.reasoning.strip())
        async with self._pool.acquire() as conn, conn.transaction():
            platform = await conn.fetchrow(PLATFORM_DECISION, signal_id, a.decision, confidence, reasoning)
            row_id = await conn.fetchval(
                """INSERT INTO shadow_analyses (signal_id, trader_id, user_id, analysis_number, candle_open_time,
                       price, decision, monitor_decision, confidence, reasoning, key_levels, trade_plan,
                       technical_indicators, raw_ai_response, analysis_latency_ms, gemini_tokens_used, model_name,
                       platform_analysis_id, platform_decision, platform_confidence)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13::jsonb, $14, $15,
                           $16, $17, $18, $19, $20)
                   ON CONFLICT (signal_id, analysis_number) DO NOTHING RETURNING id""",
                signal_id,
                _maybe_uuid(input.trader_id),
                _maybe_uuid(input.user_id),
                input.analysis_number,
                input.candle_open_time,
                to_decimal(_json_object(a.key_levels).get("entry")),
                a.decision,
                input.monitor_decision,
                confidence,
                reasoning,
                # The pool's codecs encode jsonb (activities/database.py): Python values, not text.
                storable_json(_json_object(a.key_levels)),
                storable_json(_json_object(a.trade_plan)),
                storable_json(a.technical_indicators),
                storable_text(a.raw_ai_response),
                storable_int(a.latency_ms),
                storable_int(a.tokens_used),
                storable_text(a.model_name),
                platform["id"] if platform else None,
                platform["decision"] if platform else None,
                platform["confidence"] if platform else None,
            )
            inserted = row_id is not None
            if not inserted:  # a retry: the row of the first attempt
                row_id = await conn.fetchval(
                    "SELECT id FROM shadow_analyses WHERE signal_id = $1 AND analysis_number = $2",
                    signal_id,
                    input.analysis_number,
                )
            if input.new_status in TERMINAL_SIGNAL_STATUSES:
                await _mark_end(conn, signal_id, input.new_status, input.reason or f"analysis #{input.analysis_number}")
        return RecordedAnalysis(analysis_id=str(row_id), inserted=inserted, signal_status=input.new_status)

    @activity.defn(name=names.FINISH_SIGNAL)
    @no_retry_on_permanent_errors
    async def finish_signal(self, input: FinishSignalInput) -> FinishedSignal:
        signal_id = _uuid(input.signal_id, "signal id")
        async with self._pool.acquire() as conn:
            stored = await _mark_end(conn, signal_id, input.status, input.reason)
        return FinishedSignal(signal_status=stored)


async def _mark_end(conn: Any, signal_id: uuid.UUID, status: str, reason: str) -> str:
    """The shadow monitor's end, written once (the first end stays, as on a signal row)."""
    return await conn.fetchval(
        """INSERT INTO shadow_intake (signal_id, decision, end_status, end_reason, ended_at)
           VALUES ($1, 'started', $2, $3, now())
           ON CONFLICT (signal_id) DO UPDATE SET end_status = coalesce(shadow_intake.end_status, EXCLUDED.end_status),
               end_reason = coalesce(shadow_intake.end_reason, EXCLUDED.end_reason),
               ended_at = coalesce(shadow_intake.ended_at, EXCLUDED.ended_at)
           RETURNING end_status""",
        signal_id,
        status,
        reason[:500],
    )


def _maybe_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class ShadowPositionStarter:
    """An `enter` in shadow mode opens nothing: the report judges it on the later candles."""

    @activity.defn(name=names.START_POSITION_ACTIVITY)
    async def start_position_manager(self, input: StartPositionInput) -> StartedPosition:
        activity.logger.info("shadow mode: signal %s entered; no position is started", input.signal_id)
        return StartedPosition(workflow_id=f"position-{input.signal_id}", started=False)
