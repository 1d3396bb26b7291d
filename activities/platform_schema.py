"""What the platform's database looks like, read once from its catalog at start-up.

The platform's migrations and its production databases differ (docs/contracts/platform.md): `user_subscriptions`
holds the tier everywhere, `user_profiles.subscription_tier` exists only in production, and the
triggers 028 (initial analysis through pg_net) and 032 (status from every analysis row) may be
present or not. The intake builds its eligibility query from this, and the worker decides from it
who runs each signal's first analysis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import asyncpg

from runtime.config import InitialAnalysisSetting

InitialAnalysis = Literal["platform", "monitor"]

TRIGGER_028 = "auto_trigger_ai_analysis"  # AFTER INSERT ON signals: posts analyze-signal via pg_net
TRIGGER_032 = "update_signal_status_on_analysis"  # AFTER INSERT ON signal_analyses: sets the status

_TABLES = ("signals", "traders", "user_profiles", "user_subscriptions", "signal_analyses")

# What the intake cannot work without, and who creates it.
_REQUIRED = {
    "signals": (
        "id",
        "trader_id",
        "status",
        "timestamp",
        "symbol",
        "interval",
        "monitor_reason",
        "monitor_intake",
        "monitor_leave_reason",
    ),
    "traders": ("id", "user_id", "name", "filter", "auto_analyze_signals", "max_monitoring_duration"),
    "user_subscriptions": ("user_id", "tier", "status", "expires_at"),
    "signal_analyses": ("signal_id", "decision", "analysis_number"),
}
_OURS = {
    ("signals", "monitor_reason"),
    ("signals", "monitor_intake"),
    ("signals", "monitor_leave_reason"),
    ("traders", "max_monitoring_duration"),
    ("signal_analyses", "analysis_number"),
}


class SchemaError(RuntimeError):
    """The database lacks a table or column the monitor needs: a configuration error, which no
    reconnection fixes."""


@dataclass(frozen=True)
class PlatformSchema:
    columns: frozenset[tuple[str, str]]
    trigger_028: Literal["enabled", "disabled"] | None = None
    trigger_032: bool = False
    pg_net: bool = False

    def has_table(self, table: str) -> bool:
        return any(t == table for t, _ in self.columns)

    def has(self, table: str, column: str) -> bool:
        return (table, column) in self.columns

    @property
    def profile_tier(self) -> bool:
        """Production's `user_profiles.subscription_tier` (no platform migration creates it)."""
        return self.has("user_profiles", "subscription_tier")

    def missing_for_intake(self) -> list[str]:
        missing = []
        for table, columns in _REQUIRED.items():
            if not self.has_table(table):
                missing.append(f"table {table}")
                continue
            missing.extend(f"column {table}.{c}" for c in columns if not self.has(table, c))
        return missing

    def require_for_intake(self) -> None:
        missing = self.missing_for_intake()
        if not missing:
            return
        ours = [m for m in missing if tuple(m.removeprefix("column ").split(".")) in _OURS]
        hint = " (run `signal-monitor migrate`)" if ours or "table user_subscriptions" in missing else ""
        raise SchemaError(f"the database has no {', '.join(missing)}{hint}")


@dataclass(frozen=True)
class InitialAnalysisChoice:
    mode: InitialAnalysis
    why: str


def choose_initial_analysis(setting: InitialAnalysisSetting, schema: PlatformSchema) -> InitialAnalysisChoice:
    """Who runs analysis #0. `platform` only makes sense where trigger 028 can actually post: it is
    there and enabled, pg_net is installed, and the profile tier it reads exists (without that
    column the trigger's query fails and the trigger swallows the error)."""
    if setting == "monitor":
        return InitialAnalysisChoice("monitor", "forced by SIGNAL_MONITOR_INITIAL_ANALYSIS=monitor")
    if setting == "platform":
        return InitialAnalysisChoice("platform", "forced by SIGNAL_MONITOR_INITIAL_ANALYSIS=platform")
    if schema.trigger_028 is None:
        return InitialAnalysisChoice("monitor", f"trigger {TRIGGER_028} is not installed")
    if schema.trigger_028 == "disabled":
        return InitialAnalysisChoice("monitor", f"trigger {TRIGGER_028} is disabled")
    if not schema.pg_net:
        return InitialAnalysisChoice("monitor", f"trigger {TRIGGER_028} is installed but pg_net (net.http_post) is not")
    if not schema.profile_tier:
        return InitialAnalysisChoice(
            "monitor", f"trigger {TRIGGER_028} reads user_profiles.subscription_tier, which this database lacks"
        )
    return InitialAnalysisChoice("platform", f"trigger {TRIGGER_028} is installed and enabled")


async def inspect(conn: asyncpg.Connection | asyncpg.Pool) -> PlatformSchema:
    """Tables are looked up as unqualified queries find them (the search_path)."""
    rows = await conn.fetch(
        """SELECT c.relname, a.attname FROM pg_class c
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v') AND pg_table_is_visible(c.oid)""",
        list(_TABLES),
    )
    triggers = await conn.fetch(
        """SELECT t.tgname, t.tgenabled FROM pg_trigger t
           WHERE NOT t.tgisinternal AND t.tgname = ANY($1::text[])
             AND t.tgrelid IN (to_regclass('signals'), to_regclass('signal_analyses'))""",
        [TRIGGER_028, TRIGGER_032],
    )
    state = {r["tgname"]: r["tgenabled"] for r in triggers}
    pg_net = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                          WHERE n.nspname = 'net' AND p.proname = 'http_post')"""
    )
    t028 = state.get(TRIGGER_028)
    return PlatformSchema(
        columns=frozenset((r["relname"], r["attname"]) for r in rows),
        # 'D' disabled; 'O' (origin), 'A' (always), 'R' (replica only: not fired by normal sessions).
        trigger_028=None if t028 is None else ("disabled" if t028 in ("D", "R") else "enabled"),
        trigger_032=TRIGGER_032 in state and state[TRIGGER_032] not in ("D", "R"),
        pg_net=bool(pg_net),
    )


def describe(schema: PlatformSchema, choice: InitialAnalysisChoice) -> str:
    """One start-up line: where eligibility comes from and who runs analysis #0."""
    tier = "user_subscriptions" + (" + user_profiles.subscription_tier" if schema.profile_tier else "")
    t032 = "present" if schema.trigger_032 else "absent"
    return f"eligibility from {tier}; trigger 032 {t032}; initial analysis by the {choice.mode} ({choice.why})"
