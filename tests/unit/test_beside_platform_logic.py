"""Pure logic behind running beside the platform: eligibility, who runs analysis #0, which
PostgreSQL errors are permanent, exact decimals. No Temporal, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from activities.db_errors import PERMANENT_DATABASE_ERROR, is_permanent, permanent_error
from activities.exact import positive_decimal, to_decimal
from activities.platform_schema import PlatformSchema, SchemaError, choose_initial_analysis
from intake.eligibility import Subscription, tier_problem

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sub", "profile", "has_column", "eligible"),
    [
        (Subscription("elite", "active", None), None, False, True),
        (Subscription("ELITE", "Active", NOW + timedelta(days=1)), None, False, True),
        (Subscription("elite", "active", NOW - timedelta(seconds=1)), None, False, False),  # expired
        (Subscription("elite", "cancelled", None), None, False, False),
        (Subscription("elite", "past_due", None), "elite", True, True),  # the profile says elite
        (Subscription("pro", "active", None), "ELITE", True, True),  # old upper-case profile rows
        (Subscription("pro", "active", None), "ELITE", False, False),  # no such column: not read
        (None, "elite", True, True),
        (None, "free", True, False),
        (None, None, False, False),
        (Subscription("elite", "active", None), None, True, True),  # upgraded in the admin page
    ],
)
def test_elite_is_an_active_subscription_or_the_profile_tier(sub, profile, has_column, eligible):
    assert (tier_problem(sub, profile, has_column, NOW) is None) is eligible


def test_the_reason_names_the_tier_and_the_subscription():
    why = tier_problem(Subscription("elite", "active", NOW - timedelta(days=2)), "free", True, NOW)
    assert why is not None and "no active elite subscription (subscription elite, expired" in why
    assert "profile tier free" in why
    assert "no subscription" in (tier_problem(None, "Pro", True, NOW) or "")


def _schema(**kwargs) -> PlatformSchema:
    columns = {("user_profiles", "id"), ("signals", "id")}
    if kwargs.pop("profile_tier", True):
        columns.add(("user_profiles", "subscription_tier"))
    return PlatformSchema(columns=frozenset(columns), **kwargs)


def test_initial_analysis_is_the_platforms_only_where_trigger_028_can_post():
    ready = dict(trigger_028="enabled", pg_net=True)
    assert choose_initial_analysis("auto", _schema(**ready)).mode == "platform"
    assert choose_initial_analysis("auto", _schema(**ready, profile_tier=False)).mode == "monitor"
    assert "disabled" in choose_initial_analysis("auto", _schema(trigger_028="disabled", pg_net=True)).why
    assert "not installed" in choose_initial_analysis("auto", _schema()).why
    assert "pg_net" in choose_initial_analysis("auto", _schema(trigger_028="enabled")).why
    assert choose_initial_analysis("monitor", _schema(**ready)).mode == "monitor"
    assert choose_initial_analysis("platform", _schema()).mode == "platform"


def test_missing_tables_and_columns_are_named():
    schema = PlatformSchema(columns=frozenset({("signals", "id"), ("traders", "id")}))
    with pytest.raises(SchemaError) as caught:
        schema.require_for_intake()
    message = str(caught.value)
    assert "table user_subscriptions" in message and "column signals.monitor_intake" in message
    assert "signal-monitor migrate" in message


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (asyncpg.NotNullViolationError, True),
        (asyncpg.CheckViolationError, True),
        (asyncpg.UniqueViolationError, True),
        (asyncpg.InvalidTextRepresentationError, True),  # 22P02, a data error
        (asyncpg.NumericValueOutOfRangeError, True),
        (asyncpg.UndefinedColumnError, True),
        (asyncpg.UndefinedTableError, True),
        (asyncpg.InsufficientPrivilegeError, True),
        (asyncpg.AdminShutdownError, False),  # a server restart: waited out
        (asyncpg.CannotConnectNowError, False),
        (asyncpg.DeadlockDetectedError, False),
        (asyncpg.SerializationError, False),
        (asyncpg.QueryCanceledError, False),
    ],
)
def test_which_postgres_errors_are_permanent(error, permanent):
    assert is_permanent(error("boom")) is permanent


def test_a_permanent_error_carries_postgres_message_and_is_not_retryable():
    exc = asyncpg.NotNullViolationError('null value in column "key_levels" violates not-null constraint')
    converted = permanent_error(exc)
    assert converted.type == PERMANENT_DATABASE_ERROR and converted.non_retryable
    assert 'null value in column "key_levels"' in converted.message and "23502" in converted.message


def test_prices_stay_the_decimals_received():
    assert str(to_decimal(43250.12)) == "43250.12"  # a JSON number parsed to float
    assert str(to_decimal("43250.12000000")) == "43250.12000000"  # Binance's strings, as sent
    assert to_decimal(Decimal("0.00001234")) == Decimal("0.00001234")
    assert to_decimal(True) is None and to_decimal("n/a") is None and to_decimal(float("nan")) is None
    assert positive_decimal(0) is None and positive_decimal(-1.5) is None
    assert str(positive_decimal(1e-8)) == "1E-8"
