"""Pure parts behind the operators' figures and the live rollout: the bridge's overdue streams,
the cost estimate, the error kinds, the live verdict and its default caps."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, cast

import asyncpg
from temporalio.exceptions import ApplicationError

from runtime.live_rollout import LiveRollout, default_caps, live_verdict
from runtime.model_prices import estimated_cost_usd
from runtime.rollout import Rollout, allowing
from signal_bridge.router import CloseRouter
from signal_bridge.stats import BridgeStats
from workers.activity_metrics import error_kind, model_label
from workflows.common import names

MIN = 60_000


def test_a_stream_is_overdue_two_intervals_and_the_slack_after_its_newest_close():
    router = CloseRouter(cast(Any, None), cast(Any, None), BridgeStats(), 100, 5.0)
    btc, eth, month = ("BTCUSDT", "1m"), ("ETHUSDT", "5m"), ("BTCUSDT", "1M")
    t0 = 1_700_000_000_000
    router.high_water[btc] = t0  # its close came at t0 + 1 min; the next is due at t0 + 2 min
    slack = 65_000
    assert router.overdue([btc, eth, month], t0 + 2 * MIN + slack, slack) == 0
    assert router.overdue([btc, eth, month], t0 + 2 * MIN + slack + 1, slack) == 1  # BTC late
    # ETH never had a close: late one interval plus the slack after it was first sent here.
    first_sent = t0 + 2 * MIN + slack
    assert router.overdue([eth], first_sent + 5 * MIN + slack, slack) == 0
    assert router.overdue([eth], first_sent + 5 * MIN + slack + 1, slack) == 1
    router.high_water[btc] = t0 + 10 * MIN
    assert router.overdue([btc], t0 + 11 * MIN, slack) == 0
    # A stream no longer sent here is forgotten: sent again later, its clock starts again.
    assert router.overdue([], t0 + 20 * MIN, slack) == 0
    assert router.overdue([eth], t0 + 20 * MIN, slack) == 0


def test_cost_is_blended_per_model_and_unknown_models_cost_as_the_platforms():
    flash = estimated_cost_usd("google/gemini-2.5-flash", 1_000_000)
    assert flash == Decimal("0.30") * Decimal("0.95") + Decimal("2.50") * Decimal("0.05")
    assert estimated_cost_usd("fake-llm-proxy", 1_000_000) == flash
    assert estimated_cost_usd("gemini-2.5-flash-lite", 1_000_000) < flash
    assert estimated_cost_usd("google/gemini-2.5-flash", 0) == 0


def test_error_kinds_and_model_labels_are_fixed_words():
    assert error_kind(ApplicationError("x", type=names.LLM_SERVER_ERROR)) == ("llm_proxy", "http_5xx")
    assert error_kind(ApplicationError("x", type=names.LLM_RATE_LIMITED)) == ("llm_proxy", "http_429")
    assert error_kind(ApplicationError("x", type=names.PERMANENT_DATABASE_ERROR)) == ("database", "permanent")
    assert error_kind(ConnectionResetError()) == ("database", "connection")
    assert error_kind(asyncpg.DeadlockDetectedError("deadlock")) == ("database", "server")
    assert error_kind(ValueError("mine")) is None
    assert model_label("google/gemini-2.5-flash") == "google/gemini-2.5-flash"
    assert model_label('x"}\nsecret') == "other" and model_label(None) == "other"


def test_live_orders_follow_their_own_ladder_and_the_plans_caps():
    trader, user = str(uuid.uuid4()), str(uuid.uuid4())
    off = LiveRollout(Rollout(mode="off"))
    assert live_verdict(off, trader, user, Decimal(10), Decimal(0)).kind == "not_in_rollout"
    alpha = LiveRollout(allowing(Rollout(mode="traders"), trader=trader))
    assert alpha.caps == default_caps(Rollout(mode="traders"))
    assert live_verdict(alpha, trader, user, Decimal(40), Decimal(0)).allowed
    assert live_verdict(alpha, trader, user, Decimal(40), Decimal(20)).kind == "over_total_cap"  # $50 in total
    assert live_verdict(alpha, str(uuid.uuid4()), user, Decimal(1), Decimal(0)).kind == "not_in_rollout"
    beta = LiveRollout(allowing(Rollout(mode="users"), user=user))
    assert live_verdict(beta, trader, user, Decimal(101), Decimal(0)).kind == "over_order_cap"  # $100 a trade
    assert live_verdict(beta, trader, user, Decimal(100), Decimal(400)).allowed  # $500 in total
    assert live_verdict(beta, trader, user, Decimal(100), Decimal(401)).kind == "over_total_cap"
    assert live_verdict(beta, trader, user, Decimal("NaN"), Decimal(0)).kind == "bad_amount"
    caps = [default_caps(Rollout(mode="percent", percent=Decimal(p))).max_total_usd for p in (10, 25, 50, 100)]
    assert caps == sorted(caps) and caps[-1] == Decimal(1000)  # rising to $1000
    override = LiveRollout(Rollout(mode="all"), max_order_usd=Decimal(20))
    assert live_verdict(override, trader, user, Decimal(25), Decimal(0)).kind == "over_order_cap"
