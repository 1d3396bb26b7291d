"""Process settings, from the environment. Temporal's own settings are read separately through
`temporalio.envconfig` (see workers/temporal_client.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from activities.platform_schema import INITIAL_ANALYSIS_SETTINGS, InitialAnalysisSetting
from activities.redaction import has_unsafe_characters
from workflows.names import DEFAULT_TASK_QUEUE
from workflows.paper import DEFAULT_FEE_PCT, DEFAULT_SLIPPAGE_PCT

INITIAL_ANALYSIS_ENV = "SIGNAL_MONITOR_INITIAL_ANALYSIS"
PLATFORM_GRACE_ENV = "SIGNAL_MONITOR_PLATFORM_GRACE_SECONDS"

# Settings whose values are secrets: checked at start-up, never printed, redacted from logs.
SECRET_ENV = ("LLM_PROXY_KEY", "TEMPORAL_API_KEY")


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


def _initial_analysis() -> InitialAnalysisSetting:
    raw = (os.environ.get(INITIAL_ANALYSIS_ENV) or "auto").strip().lower()
    for choice in INITIAL_ANALYSIS_SETTINGS:
        if raw == choice:
            return choice
    raise ConfigError(f"{INITIAL_ANALYSIS_ENV} must be one of {', '.join(INITIAL_ANALYSIS_SETTINGS)}, got {raw!r}")


def _grace() -> float:
    value = _float(PLATFORM_GRACE_ENV, 120.0)
    if value is None or value < 0:
        raise ConfigError(f"{PLATFORM_GRACE_ENV} must be a number of seconds >= 0, got {value!r}")
    return value


def check_secret(name: str, value: str | None) -> None:
    """A secret with whitespace or control characters (a pasted trailing newline) is refused: it
    would be sent as an illegal header and quoted back in errors. The message never shows it."""
    if value and has_unsafe_characters(value):
        raise ConfigError(
            f"{name} contains whitespace or control characters (a trailing newline?); "
            "fix the value (it is not shown here)"
        )


def _check_secrets() -> None:
    for name in SECRET_ENV:
        check_secret(name, os.environ.get(name))
    url = os.environ.get("DATABASE_URL") or ""
    if url != url.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ConfigError("DATABASE_URL contains whitespace or control characters; fix it (it is not shown here)")


def secret_values() -> list[str]:
    """This process's secrets, for the log redaction: keys and the database password."""
    from urllib.parse import unquote, urlsplit

    values = [os.environ.get(name) or "" for name in SECRET_ENV]
    try:
        password = urlsplit(os.environ.get("DATABASE_URL") or "").password
    except ValueError:
        password = None
    if password:
        values += [password, unquote(password)]
    return [v for v in values if v]


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
    # Who runs analysis #0 beside the platform's trigger 028 (auto | platform | monitor), and how
    # long the platform's is waited for.
    initial_analysis: InitialAnalysisSetting = "auto"
    platform_grace_seconds: float = 120.0
    # Paper execution (position management): percent of notional per fill, and market-order slippage.
    paper_fee_pct: Decimal = DEFAULT_FEE_PCT
    paper_slippage_pct: Decimal = DEFAULT_SLIPPAGE_PCT

    @classmethod
    def from_env(cls) -> Settings:
        _check_secrets()
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
            initial_analysis=_initial_analysis(),
            platform_grace_seconds=_grace(),
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
