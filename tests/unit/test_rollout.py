"""The rollout ladder (runtime/rollout.py): who each step admits, the stable percentage, the seed."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from runtime.rollout import (
    BUCKETS,
    Rollout,
    RolloutError,
    allowing,
    ladder,
    parse_percent,
    parse_seed,
    user_bucket,
    with_mode,
)

TRADER, OWNER = str(uuid.uuid4()), str(uuid.uuid4())


def test_each_step_keeps_everyone_the_step_before_admitted():
    canary_user, canary_trader = str(uuid.uuid4()), str(uuid.uuid4())
    base = allowing(allowing(Rollout(), trader=TRADER), user=canary_user)
    test_signal = (TRADER, OWNER)
    canary_signal = (canary_trader, canary_user)
    stranger = (str(uuid.uuid4()), str(uuid.uuid4()))
    admitted = {label: [r.admits(*who) for who in (test_signal, canary_signal, stranger)] for label, r in ladder(base)}
    assert admitted["off"] == [False, False, False]
    assert admitted["traders"] == [True, False, False]
    assert admitted["users"] == [True, True, False]
    assert admitted["all"] == [True, True, True]
    for label in ("percent 10 %", "percent 25 %", "percent 50 %"):
        assert admitted[label][:2] == [True, True], label
    assert Rollout(mode="traders").why_not(TRADER, OWNER) == "not in rollout (traders)"
    assert Rollout(mode="all").why_not(TRADER, OWNER) is None


def test_a_user_in_at_10_percent_stays_in_at_25_and_the_shares_are_about_right():
    users = [uuid.UUID(int=i * 7919 + 12345) for i in range(4000)]
    inside = {}
    for pct in (10, 25, 50, 100):
        r = Rollout(mode="percent", percent=Decimal(pct))
        inside[pct] = {u for u in users if r.admits(None, u)}
    assert inside[10] <= inside[25] <= inside[50] <= inside[100] == set(users)
    for pct in (10, 25, 50):
        assert abs(len(inside[pct]) / len(users) - pct / 100) < 0.03, (pct, len(inside[pct]))
    assert not Rollout(mode="percent", percent=Decimal(0)).admits(None, users[0])


def test_the_bucket_is_fixed_per_user_whatever_the_spelling():
    u = uuid.UUID("7b3c9a52-0d3e-4c8e-9f00-0123456789ab")
    assert user_bucket(u) == user_bucket(str(u).upper()) == user_bucket(str(u))
    assert 0 <= user_bucket(u) < BUCKETS
    # The hash is SHA-256 of the canonical text: pinned, so a change of code never reshuffles users.
    assert user_bucket(u) == int.from_bytes(__import__("hashlib").sha256(str(u).encode()).digest()[:8]) % BUCKETS


def test_the_seed_and_changes_refuse_what_they_cannot_use():
    assert parse_seed("all") == Rollout(mode="all")
    assert parse_seed(" OFF ") == Rollout(mode="off")
    assert parse_seed("percent:12.5") == Rollout(mode="percent", percent=Decimal("12.5"))
    for bad in ("some", "percent", "percent:101", "percent:-1", "all:3", "percent:1.234", "percent:nan"):
        with pytest.raises(RolloutError):
            parse_seed(bad)
    with pytest.raises(RolloutError):
        with_mode(Rollout(), "percent", None)  # from `all` the percentage must be named
    assert with_mode(Rollout(mode="percent", percent=Decimal(10)), "percent", None).percent == Decimal(10)
    with pytest.raises(RolloutError):
        with_mode(Rollout(), "users", Decimal(5))
    with pytest.raises(RolloutError):
        allowing(Rollout(), trader="not-a-uuid")
    assert parse_percent("25") == Decimal(25)
    r = allowing(Rollout(mode="traders"), trader=TRADER.upper())
    assert r.admits(TRADER, None)
    assert not allowing(r, trader=TRADER, allow=False).admits(TRADER, None)


def test_the_settings_refuse_a_rollout_seed_or_shadow_value_they_cannot_use(monkeypatch):
    from runtime.config import ConfigError, Settings

    monkeypatch.setenv("SIGNAL_MONITOR_ROLLOUT", "percent:10")
    monkeypatch.setenv("SIGNAL_MONITOR_SHADOW", "ON")
    settings = Settings.from_env()
    assert settings.rollout_seed == Rollout(mode="percent", percent=Decimal(10)) and settings.shadow_mode
    monkeypatch.setenv("SIGNAL_MONITOR_ROLLOUT", "half")
    with pytest.raises(ConfigError, match="SIGNAL_MONITOR_ROLLOUT is invalid: must be one of off, traders"):
        Settings.from_env()
    monkeypatch.setenv("SIGNAL_MONITOR_ROLLOUT", "")
    monkeypatch.setenv("SIGNAL_MONITOR_SHADOW", "maybe")
    with pytest.raises(ConfigError, match="SIGNAL_MONITOR_SHADOW must be one of on, off"):
        Settings.from_env()
    monkeypatch.delenv("SIGNAL_MONITOR_SHADOW")
    assert Settings.from_env().rollout_seed == Rollout(mode="all")  # empty: today's behaviour
