"""The `model` backend's audit columns (migration 008) on the row a decision was recorded in:
written in the same transaction as the row itself, so a row never exists without them."""

from __future__ import annotations

from typing import Literal

import asyncpg

from workflows.common.model_call import ModelCall

Table = Literal["signal_analyses", "position_management_decisions"]


async def write_model_call(conn: asyncpg.Connection, table: Table, row_id: object, call: ModelCall | None) -> None:
    if call is None:
        return
    await conn.execute(
        f"""UPDATE {table} SET model_requested = $2, model_served = $3, prompt_version = $4, prompt_sha256 = $5,
                tokens_in = $6, tokens_out = $7, tokens_cached = $8, cost_usd = $9, cost_source = $10,
                model_latency_ms = $11, model_attempts = $12, abstained = $13, abstain_reason = $14
            WHERE id = $1""",
        row_id,
        call.model_requested,
        call.model_served,
        call.prompt_version,
        call.prompt_sha256,
        call.tokens_in,
        call.tokens_out,
        call.tokens_cached,
        call.cost_usd,
        call.cost_source,
        call.latency_ms,
        call.attempts,
        call.abstained,
        call.abstain_reason,
    )
