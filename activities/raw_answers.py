"""A model's whole raw answer, when history keeps only its first 16,000 characters: parked by the
llm-proxy activity under the call's correlation id (table `llm_raw_answers`, migration 011) and
moved into its analysis or decision row by the write of that row. One statement each; a failed
park is logged, never a failed analysis (history still holds the cut answer, and the row gets it)."""

from __future__ import annotations

import logging

import asyncpg

from activities.answer_hygiene import MAX_RAW_CHARS

log = logging.getLogger("signal_monitor.raw_answers")

_PARK = """INSERT INTO llm_raw_answers (correlation_id, chars, raw_ai_response) VALUES ($1, $2, $3)
           ON CONFLICT (correlation_id) DO UPDATE SET chars = EXCLUDED.chars,
               raw_ai_response = EXCLUDED.raw_ai_response, created_at = now()"""
# In the row's own transaction: the parked answer, removed as it is taken (NULL when none).
TAKE = "DELETE FROM llm_raw_answers WHERE correlation_id = $1 RETURNING raw_ai_response"


def analysis_correlation(signal_id: str, analysis_number: int) -> str:
    return f"{signal_id}:{analysis_number}"


def position_correlation(signal_id: str, candle_open_ms: int) -> str:
    return f"{signal_id}:position:{candle_open_ms}"


class RawAnswers:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def park(self, correlation_id: str, raw: str) -> None:
        try:
            await self._pool.execute(_PARK, correlation_id, len(raw), raw)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning(
                "whole raw answer %s not kept (%s): its row gets the cut one", correlation_id, type(exc).__name__
            )


async def take_parked(conn: asyncpg.Connection, correlation_id: str, kept: str | None) -> str | None:
    """Inside the row's transaction: the parked whole answer, removed as it is taken. `kept` is the
    raw answer as history holds it: only one cut to MAX_RAW_CHARS can have a whole one parked, so
    any other row costs no statement (the savepoint and DELETE are three round trips)."""
    if kept is None or len(kept) < MAX_RAW_CHARS:
        return None
    try:
        async with conn.transaction():  # a savepoint: a database without migration 011 is no error
            return await conn.fetchval(TAKE, correlation_id)
    except asyncpg.UndefinedTableError:
        return None
