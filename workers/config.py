"""Process settings, from the environment. Temporal's own settings are read separately through
`temporalio.envconfig` (see workers/temporal_client.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from workflows.names import DEFAULT_TASK_QUEUE
from workflows.paper import DEFAULT_FEE_PCT, DEFAULT_SLIPPAGE_PCT


class ConfigError(RuntimeError):
    pass


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _percent(name: str, default: Decimal) -> Decimal:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name} must be a percentage, got {raw!r}") from None
    if not value.is_finite() or not 0 <= value <= 10:
        raise ConfigError(f"{name} must be between 0 and 10 (percent), got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    llm_proxy_url: str | None
    # repr=False: the key must never reach a log line, even through a debug print of settings.
    llm_proxy_key: str | None = field(repr=False)
    task_queue: str
    llm_max_concurrent: int
    llm_max_per_second: float | None
    llm_queue_max_per_second: float | None
    llm_timeout_seconds: float
    max_cached_workflows: int
    db_pool_size: int
    # Paper execution (position management): percent of notional per fill, and market-order slippage.
    paper_fee_pct: Decimal = DEFAULT_FEE_PCT
    paper_slippage_pct: Decimal = DEFAULT_SLIPPAGE_PCT

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            llm_proxy_url=os.environ.get("LLM_PROXY_URL") or None,
            llm_proxy_key=os.environ.get("LLM_PROXY_KEY") or None,
            task_queue=os.environ.get("SIGNAL_MONITOR_TASK_QUEUE") or DEFAULT_TASK_QUEUE,
            llm_max_concurrent=_int("SIGNAL_MONITOR_LLM_MAX_CONCURRENT", 8),
            llm_max_per_second=_float("SIGNAL_MONITOR_LLM_MAX_PER_SECOND", None),
            llm_queue_max_per_second=_float("SIGNAL_MONITOR_LLM_QUEUE_MAX_PER_SECOND", None),
            llm_timeout_seconds=_float("SIGNAL_MONITOR_LLM_TIMEOUT_SECONDS", 30.0) or 30.0,
            max_cached_workflows=_int("SIGNAL_MONITOR_MAX_CACHED_WORKFLOWS", 1000),
            db_pool_size=_int("SIGNAL_MONITOR_DB_POOL_SIZE", 10),
            paper_fee_pct=_percent("SIGNAL_MONITOR_PAPER_FEE_PCT", DEFAULT_FEE_PCT),
            paper_slippage_pct=_percent("SIGNAL_MONITOR_PAPER_SLIPPAGE_PCT", DEFAULT_SLIPPAGE_PCT),
        )

    def require_database(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (e.g. postgresql://user@host:5432/db)")
        return self.database_url

    def require_llm_proxy(self) -> tuple[str, str]:
        if not self.llm_proxy_url:
            raise ConfigError("LLM_PROXY_URL is not set")
        if not self.llm_proxy_key:
            raise ConfigError("LLM_PROXY_KEY is not set")
        return self.llm_proxy_url, self.llm_proxy_key
