"""Every process's settings, from the environment, in one pydantic-settings model.

`Settings.from_env()` is the only reader of the project's variables (Temporal's own are read by
`temporalio.envconfig`, see runtime/temporal_client.py). The names and defaults are the tables of
docs/configuration.md and docs/signal-bridge.md. One error policy: a value that does not fit is a
`ConfigError` naming the variable (a secret's value is never shown), which the command line turns
into exit code 2 at start-up. The bridge's knobs are the nested section `settings.bridge`, still
read from `BINANCE_*`, `SIGNAL_BRIDGE_*` and `DATABASE_URL`."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.redaction import has_unsafe_characters
from runtime.rollout import Rollout, RolloutError, parse_seed
from workflows.common.names import DEFAULT_TASK_QUEUE, POSITION_WORKFLOW_TYPE, WORKFLOW_TYPE
from workflows.common.policies import ANALYSIS_RETRY
from workflows.position.paper import DEFAULT_FEE_PCT, DEFAULT_SLIPPAGE_PCT

DEFAULT_REST_URL = "https://api.binance.com"
DEFAULT_WS_URL = "wss://stream.binance.com:9443"

# SIGNAL_MONITOR_INITIAL_ANALYSIS: who runs analysis #0 beside the platform's trigger 028 (the
# worker and the intake decide from it and the platform's schema, activities/platform_schema.py).
InitialAnalysisSetting = Literal["auto", "platform", "monitor"]

# Settings whose values are secrets: checked at start-up, never printed, redacted from logs.
SECRET_ENV = ("LLM_PROXY_KEY", "SIGNAL_MONITOR_MODEL_KEY", "TEMPORAL_API_KEY")
_SECRET_FIELDS = frozenset({"llm_proxy_key", "model_key", "database_url"})

# Monitors and position managers both take `candle_closed` of their (SignalSymbol, SignalInterval).
RUNNING_MONITORS_QUERY = (
    f"WorkflowType IN ('{WORKFLOW_TYPE}', '{POSITION_WORKFLOW_TYPE}') AND ExecutionStatus = 'Running'"
)
BridgeMode = Literal["redundant", "shared"]
# Who decides behind `analyze_signal` and `manage_position` (docs/model-backend.md).
DecisionBackend = Literal["llm-proxy", "model"]
# How the model is asked for JSON: OpenAI-compatible servers differ (docs/model-backend.md).
StructuredMode = Literal["json_schema", "json_object_schema", "json_object"]
MODES: tuple[BridgeMode, ...] = ("redundant", "shared")


class ConfigError(RuntimeError):
    pass


class BridgeSettings(BaseSettings):
    """`signal-monitor bridge`. Binance endpoints keep Binance-ish names; every other knob is
    `SIGNAL_BRIDGE_<FIELD>`. Defaults are the values that are safe against the real exchange."""

    # env_ignore_empty: `VAR=` means "use the default", as the hand-written readers did; fields by
    # name (tests, the backtest) or by their variable's name. Written out in each class (not built
    # by a helper) so that the pydantic mypy plugin sees it.
    model_config = SettingsConfigDict(
        env_prefix="SIGNAL_BRIDGE_", env_ignore_empty=True, frozen=True, extra="forbid", populate_by_name=True
    )

    ws_url: str = Field(DEFAULT_WS_URL, validation_alias="BINANCE_WS_URL")
    rest_url: str = Field(DEFAULT_REST_URL, validation_alias="BINANCE_REST_URL")
    # Visibility is eventually consistent: how often the running monitors are listed again.
    refresh_seconds: float = Field(5.0, gt=0)
    query: str = RUNNING_MONITORS_QUERY
    # Binance: at most 1024 streams per connection.
    streams_per_connection: int = Field(1024, ge=1, le=1024)
    # Binance: at most 5 incoming messages/s per connection, pings and pongs included. One
    # control message per 0.35 s leaves room for the pongs and our own keepalive pings; below
    # 0.2 s risks the 5 messages/s rule.
    control_interval: float = Field(0.35, ge=0.2)
    subscribe_batch: int = Field(200, ge=1)  # streams per SUBSCRIBE message
    reply_timeout: float = Field(10.0, gt=0)  # for a SUBSCRIBE/UNSUBSCRIBE answer
    # Binance cuts a connection at 24 h: rotate (make-before-break) well before.
    max_connection_age: float = Field(23 * 3600.0, gt=0)
    reconnect_initial: float = Field(1.0, gt=0)
    reconnect_max: float = Field(60.0, gt=0)
    # Binance allows 300 connection attempts per 5 minutes per IP; stay under it.
    connect_attempts_per_5min: int = Field(200, ge=1)
    open_timeout: float = Field(10.0, gt=0)
    ping_interval: float = Field(20.0, ge=0)  # our keepalive pings (0 = off); Binance pings us as well
    ping_timeout: float = Field(60.0, gt=0)
    signal_concurrency: int = Field(32, ge=1)
    signal_timeout: float = Field(10.0, gt=0)
    retry_initial: float = Field(1.0, gt=0)
    retry_max: float = Field(30.0, gt=0)
    dedup_capacity: int = Field(200_000, ge=1)
    backfill_on_start: bool = True
    # A stream newly watched after start (a new monitor, or one visibility showed late) gets
    # its newest closed candle from REST too: the monitor ignores it if it predates the signal.
    backfill_new_streams: bool = True
    missing_close_grace: float = Field(5.0, ge=0)  # a close not seen by then (next candle under way): ask REST
    rest_concurrency: int = Field(4, ge=1)
    rest_timeout: float = Field(10.0, gt=0)
    rest_max_attempts: int = Field(5, ge=1)
    stats_seconds: float = Field(60.0, gt=0)
    # redundant: every replica sends every close (each monitor de-duplicates). shared: the
    # replicas divide the streams through PostgreSQL advisory locks (see signal_bridge/ownership.py).
    mode: BridgeMode = "redundant"
    buckets: int = Field(64, ge=1, le=4096)  # streams hash into this many; every replica of a group must agree
    # Rebalancing step; a dead replica's streams move within ~2 steps, a frozen one's within ~8
    # (signal_bridge/ownership.py: fenced after STALE_STEPS steps without a heartbeat).
    ownership_check_seconds: float = Field(2.0, gt=0)
    group: str = "default"  # replicas sharing streams (separate deployments on one database differ)
    # From DATABASE_URL (shared mode only); never printed or logged.
    database_url: str = Field("", validation_alias="DATABASE_URL", repr=False)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_words(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def check(self) -> None:
        """What only the bridge itself needs (other processes share the environment)."""
        if self.mode == "shared" and not self.database_url:
            raise ConfigError(
                "SIGNAL_BRIDGE_MODE=shared needs DATABASE_URL (the replicas divide the streams through PostgreSQL)"
            )

    def printable(self) -> dict[str, object]:
        """The effective settings without secrets (for `bridge config` and logs)."""
        values: dict[str, object] = {name: getattr(self, name) for name in type(self).model_fields}
        values["database_url"] = "(set)" if self.database_url else "(unset)"
        return values

    @property
    def stream_url(self) -> str:
        return self.ws_url.rstrip("/") + "/stream"


class Settings(BaseSettings):
    """The worker's, intake's and commands' settings; `bridge` is the bridge's section."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNAL_MONITOR_", env_ignore_empty=True, frozen=True, extra="forbid", populate_by_name=True
    )

    database_url: str | None = Field(None, validation_alias="DATABASE_URL", repr=False)
    llm_proxy_url: str | None = Field(None, validation_alias="LLM_PROXY_URL")
    # repr=False: the key must never reach a log line, even through a debug print of settings.
    llm_proxy_key: str | None = Field(None, validation_alias="LLM_PROXY_KEY", repr=False)
    # The decision backend: unset = llm-proxy when LLM_PROXY_URL is set, else model when
    # SIGNAL_MONITOR_MODEL_URL is (`decision_backend()`).
    decisions: DecisionBackend | None = None
    # An OpenAI-compatible chat-completions endpoint (base URL, `/chat/completions` is appended).
    model_url: str | None = None
    model_key: str | None = Field(None, repr=False)  # a secret, as LLM_PROXY_KEY
    model: str | None = None  # model id; required with SIGNAL_MONITOR_DECISIONS=model
    monitoring_model: str | None = None  # reanalyses #1+ and position management, when set
    model_structured: StructuredMode = "json_schema"
    model_temperature: float = Field(0.2, ge=0, le=2)
    model_max_tokens: int = Field(1200, ge=64, le=32_000)
    model_candles: int = Field(100, ge=20, le=500)  # candles of the signal's interval in each prompt
    task_queue: str = DEFAULT_TASK_QUEUE
    llm_max_concurrent: int = Field(8, ge=1)
    llm_max_per_second: float | None = Field(None, gt=0)
    llm_queue_max_per_second: float | None = Field(None, gt=0)
    llm_timeout_seconds: float = Field(30.0, gt=0)
    max_cached_workflows: int = Field(1000, ge=0)
    # How long a workflow task waits on its worker's sticky queue before any worker may take it
    # (with a full replay): the SDK's default is 10 s.
    sticky_schedule_to_start_seconds: float = Field(10.0, gt=0)
    db_pool_size: int = Field(10, ge=1)
    # Who runs analysis #0 beside the platform's trigger 028 (auto | platform | monitor), and how
    # long the platform's is waited for.
    initial_analysis: InitialAnalysisSetting = "auto"
    platform_grace_seconds: float = Field(120.0, ge=0)
    # Paper execution (position management): percent of notional per fill, and market-order slippage.
    paper_fee_pct: Decimal = Field(DEFAULT_FEE_PCT, ge=0, le=10)
    paper_slippage_pct: Decimal = Field(DEFAULT_SLIPPAGE_PCT, ge=0, le=10)
    # The first retry interval of `analyze_signal` (then doubled up to 60 s). Production keeps the
    # workflow's default; the retry tests set a short one so six attempts take seconds, not 62 s.
    analysis_retry_initial_seconds: float = Field(ANALYSIS_RETRY.initial_interval.total_seconds(), gt=0, le=60)
    intake_sweep_seconds: float = Field(30.0, gt=0)
    # The rollout written when `monitor_rollout` holds no row yet (docs/rollout.md): `all` keeps
    # monitoring every eligible signal; `off`, `traders`, `users`, `percent:N` start narrower.
    # Once the row exists the database is the only word (`signal-monitor rollout set`).
    rollout: str = "all"
    # Shadow mode: monitors analyse into shadow_analyses only (nothing in signals or
    # signal_analyses, no position, no order).
    shadow: Literal["on", "off"] = "off"
    running_refresh_seconds: float = Field(15.0, gt=0)
    metrics_address: str | None = None
    log_format: Literal["text", "json"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Binance REST for `add-signal`, `history`, `chart` and `backtest --start/--end`.
    binance_rest_url: str = Field(DEFAULT_REST_URL, validation_alias="BINANCE_REST_URL")
    # Where `add-signal` and `dev` point a reader for the Temporal UI (not Temporal itself).
    temporal_ui_url: str | None = Field(None, validation_alias="TEMPORAL_UI_URL")
    # Live orders (docs/live-orders.md): off unless `on`; a position is live only when its trader
    # also asks for it (traders.auto_execute_trades) and has an exchange account.
    live_trading: bool = False
    # JSON: exchange account id -> {"api_key", "api_secret"}; refused when other users can read it.
    exchange_keys_file: Path | None = None
    # Overrides every account's REST base URL (a local exchange in tests and demos).
    exchange_url: str | None = None
    # Binance's recvWindow: a request older than this never executes, so an order whose answer was
    # lost is looked up again after it (shorter: decided sooner; too short: -1021 on a slow link).
    exchange_recv_window_ms: int = Field(5000, ge=1000, le=60000)
    exchange_timeout_seconds: float = Field(5.0, gt=0, le=20)
    bridge: BridgeSettings = Field(default_factory=BridgeSettings)

    @field_validator("rollout")
    @classmethod
    def _rollout_seed(cls, value: str) -> str:
        try:
            parse_seed(value)
        except RolloutError as exc:
            raise ValueError(str(exc)) from None
        return value.strip().lower()

    @property
    def rollout_seed(self) -> Rollout:
        return parse_seed(self.rollout)

    @property
    def shadow_mode(self) -> bool:
        return self.shadow == "on"

    @field_validator(
        "initial_analysis", "log_format", "shadow", "decisions", "model_structured", "live_trading", mode="before"
    )
    @classmethod
    def _lower_words(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_words(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("metrics_address", "model_url", "model", "monitoring_model", "exchange_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return (value.strip() or None) if isinstance(value, str) else value

    @classmethod
    def from_env(cls) -> Settings:
        """This process's settings; a `ConfigError` naming the first variable that does not fit."""
        _check_secrets()
        try:
            bridge = BridgeSettings()
        except ValidationError as exc:
            raise _config_error(BridgeSettings, exc) from None
        try:
            return cls(bridge=bridge)
        except ValidationError as exc:
            raise _config_error(cls, exc) from None

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

    def decision_backend(self) -> DecisionBackend:
        """SIGNAL_MONITOR_DECISIONS, else llm-proxy when LLM_PROXY_URL is set, else model when
        SIGNAL_MONITOR_MODEL_URL is (llm-proxy when neither: its own error names what is missing)."""
        if self.decisions is not None:
            return self.decisions
        if self.llm_proxy_url:
            return "llm-proxy"
        return "model" if self.model_url else "llm-proxy"

    def require_model(self) -> tuple[str, str | None, str]:
        """(base URL, key or None, model id) for the `model` backend. A key is optional: a local
        server (Ollama, llama.cpp) takes none."""
        if not self.model_url:
            raise ConfigError("SIGNAL_MONITOR_MODEL_URL is not set (SIGNAL_MONITOR_DECISIONS=model)")
        if not self.model:
            raise ConfigError("SIGNAL_MONITOR_MODEL is not set (the model id, e.g. google/gemini-2.5-flash)")
        if not self.model_url.startswith(("http://", "https://")):
            raise ConfigError(f"SIGNAL_MONITOR_MODEL_URL must start with http:// or https://, got {self.model_url!r}")
        return self.model_url, self.model_key, self.model


def env_name(model: type[BaseSettings], field: str) -> str:
    """The variable a field is read from."""
    info = model.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"{model.model_config.get('env_prefix', '')}{field}".upper()


def _config_error(model: type[BaseSettings], exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    names = {name: env_name(model, name) for name in model.model_fields}
    var = names.get(field) or next((v for v in names.values() if v.lower() == field.lower()), field.upper())
    secret = field in _SECRET_FIELDS or var in ("DATABASE_URL", *SECRET_ENV)
    shown = "" if secret else f", got {err.get('input')!r}"
    return ConfigError(f"{var} {_expected(err)}{shown}")


def _expected(err: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "int_parsing" or kind == "int_from_float":
        return "must be a whole number"
    if kind in ("float_parsing", "decimal_parsing", "finite_number"):
        return "must be a number"
    if kind == "bool_parsing":
        return "must be true or false (1/0, yes/no, on/off)"
    if kind == "literal_error":
        return "must be one of " + str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"must be {bounds[kind]} {limit}"
    return "is invalid: " + str(err["msg"]).removeprefix("Value error, ")


def check_secret(name: str, value: str | None) -> None:
    """A secret with whitespace or control characters (a pasted trailing newline) is refused: it
    would be sent as an illegal header and quoted back in errors. The message never shows it."""
    if value and has_unsafe_characters(value):
        raise ConfigError(
            f"{name} contains whitespace or control characters (a trailing newline?); "
            "fix the value (it is not shown here)"
        )


def _check_secrets() -> None:
    # Read raw: TEMPORAL_API_KEY belongs to temporalio.envconfig, yet is vetted for every process.
    labels = {"TEMPORAL_API_KEY": "the Temporal API key (TEMPORAL_API_KEY)"}
    for name in SECRET_ENV:
        check_secret(labels.get(name, name), os.environ.get(name))
    url = os.environ.get("DATABASE_URL") or ""
    if url != url.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ConfigError("DATABASE_URL contains whitespace or control characters; fix it (it is not shown here)")


def secret_values() -> list[str]:
    """This process's secrets, for the log redaction: keys and the database password. Read raw,
    so that redaction works even before (or without) valid settings."""
    values = [os.environ.get(name) or "" for name in SECRET_ENV]
    try:
        password = urlsplit(os.environ.get("DATABASE_URL") or "").password
    except ValueError:
        password = None
    if password:
        values += [password, unquote(password)]
    return [v for v in values if v]
