"""The live backend's pure rules: client ids, filters, error classes, fills, risk limits."""

from __future__ import annotations

import os
import stat
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from activities.live.accounts import KeysFileError, load_keys_file, write_keys_file
from activities.live.client_ids import VALID, client_order_id, protective_key
from activities.live.errors import body_of, classify
from activities.live.fills import aggregate
from activities.live.filters import SymbolRules
from activities.live.limits import RiskLimits, refusal
from fakes.binance.spot_book import SymbolInfo

RULES = SymbolRules.from_exchange_info(SymbolInfo("BTCUSDT", "BTC", "USDT").exchange_info())


def test_client_ids_are_venue_valid_stable_and_distinct() -> None:
    keys = ["1:open", "x" * 500, "sig:1:operator2-0:adjust_sl", protective_key("a:b", "0"), ""]
    ids = [client_order_id(k) for k in keys]
    assert all(VALID.match(i) and len(i) <= 36 for i in ids)
    assert len(set(ids)) == len(ids) and client_order_id("1:open") == ids[0]
    assert client_order_id(protective_key("k", "0")) != client_order_id(protective_key("k", "m"))


def test_filters_round_and_refuse() -> None:
    assert (RULES.tick_size, RULES.step_size, RULES.min_notional) == (D("0.01"), D("0.00001"), D(5))
    assert RULES.floor_qty(D("0.123456789")) == D("0.12345")
    assert RULES.refusal(D("0.04"), D(100)) is not None and "minimum notional" in str(RULES.refusal(D("0.04"), D(100)))
    assert RULES.refusal(D("0.05"), D(100)) is None
    assert RULES.refusal(D(0), D(100)) is not None
    # The stop is rounded toward the market (triggers no later), the limit under it.
    assert RULES.stop_limit(D("96.999"), D("0.5")) == (D("97"), D("96.51"))


def classified(status, body, name="ExchangeError", text="", retry_after=None):
    return classify(status=status, body=body, error_name=name, text=text, retry_after=retry_after)


@pytest.mark.parametrize(
    ("status", "body", "name", "kind"),
    [
        (400, {"code": -1013, "msg": "Filter failure: NOTIONAL"}, "ExchangeError", "refused"),
        (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}, "", "refused"),
        (400, {"code": -1100, "msg": "Illegal characters found in parameter"}, "", "refused"),
        (400, {"code": -2010, "msg": "Duplicate order sent."}, "", "duplicate"),
        (400, {"code": -2010, "msg": "Order would trigger immediately."}, "", "would_trigger"),
        (400, {"code": -2013, "msg": "Order does not exist."}, "", "not_found"),
        (400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}, "", "clock"),
        (503, {"code": -1007, "msg": "Timeout waiting for response"}, "", "unknown"),
        (502, {"code": -1001, "msg": "Internal error"}, "OperationFailed", "unknown"),
        (None, None, "RequestTimeout NetworkError BaseError", "unknown"),
        (None, None, "ExchangeNotAvailable NetworkError", "unknown"),
        (400, {"code": -1099, "msg": "something new"}, "", "retry"),
    ],
)
def test_errors_are_classified_by_binance_code(status, body, name, kind) -> None:
    assert classified(status, body, name).kind == kind


def test_rate_limits_carry_retry_after() -> None:
    got = classified(429, {"code": -1003, "msg": "Too many requests"}, retry_after="7")
    assert (got.kind, got.retry_after) == ("rate_limited", 7.0)
    assert classified(418, {"code": -1003, "msg": "banned"}).retry_after == 60.0
    assert body_of('binance {"code":-1013,"msg":"Filter failure: LOT_SIZE"}') == {
        "code": -1013,
        "msg": "Filter failure: LOT_SIZE",
    }
    assert body_of("binance POST http://x/api/v3/order") is None


def test_fills_give_quantity_average_and_fees() -> None:
    ex = aggregate(
        [
            {"price": "100", "qty": "1", "commission": "0.001", "commissionAsset": "BTC"},
            {"price": "101", "qty": "3", "commission": "0.003", "commissionAsset": "BTC"},
        ]
    )
    assert (ex.executed, ex.average_price, ex.cost) == (D(4), D("100.75"), D(403))
    assert ex.net_base("BTC", "buy") == D("3.996")  # the fee in the asset bought shrinks the position
    assert ex.fee_in("USDT", "BTC") == D("0.403")
    assert aggregate([]).executed == 0


def test_risk_limits_and_pause() -> None:
    limits = RiskLimits.merged(
        [
            {"max_exposure": D(500), "require_stop_loss": False},
            {"max_position_size": D(100), "max_exposure": D(300), "daily_loss_limit": D(50)},
        ]
    )
    assert (limits.max_position_size, limits.max_exposure) == (D(100), D(300))
    ok: dict[str, Any] = {"open_exposure": D(0), "loss_today": D(0), "has_stop_loss": True}
    assert refusal(limits, notional=D(100), **ok) is None
    assert "max_position_size" in str(refusal(limits, notional=D(101), **ok))
    assert "max_exposure" in str(refusal(limits, notional=D(50), **{**ok, "open_exposure": D(260)}))
    assert "daily_loss_limit" in str(refusal(limits, notional=D(50), **{**ok, "loss_today": D(50)}))
    strict = RiskLimits.merged([{"require_stop_loss": True}, {"trading_paused": True, "paused_reason": "halt"}])
    assert refusal(strict, notional=D(1), **ok) == "trading is paused: halt"
    stop_needed = RiskLimits.merged([{"require_stop_loss": True}])
    assert "require_stop_loss" in str(refusal(stop_needed, notional=D(1), **{**ok, "has_stop_loss": False}))
    assert refusal(stop_needed, notional=D(1), **ok) is None


def test_keys_file_must_be_private_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    account = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    write_keys_file(path, {account: ("key", "secret")})
    keys = load_keys_file(path)
    assert keys[account].api_key == "key" and "secret" not in repr(keys)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP)
    with pytest.raises(KeysFileError, match="readable by other users"):
        load_keys_file(path)
    os.chmod(path, 0o600)
    path.write_text('{"not-an-id": {"api_key": "k", "api_secret": "s"}}')
    with pytest.raises(KeysFileError, match="not an account id"):
        load_keys_file(path)
    path.write_text(f'{{"{account}": {{"api_key": "k"}}}}')
    with pytest.raises(KeysFileError, match="needs api_key and api_secret"):
        load_keys_file(path)


def test_the_exchange_target_is_the_one_that_closes_everything() -> None:
    from workflows.position.models import ModifyInput, PositionContext
    from workflows.position.risk import RiskSettings
    from workflows.position.steps import exchange_target, with_exchange_target

    plain = PositionContext(signal_id="s", signal_status=None, symbol="BTCUSDT", interval="1h", trader_found=True)
    partial = plain.model_copy(update={"risk": RiskSettings(partial_take_profit_levels=[D(50)])})
    assert exchange_target(plain, []) is None
    assert exchange_target(plain, [D(110), D(120)]) == D(110)  # no partial levels: the first sells all
    assert exchange_target(partial, [D(110), D(120)]) is None  # 50 % at 110: an OCO cannot sell half
    assert exchange_target(partial, [D(120)]) == D(120)  # the last target sells what is left
    modify = ModifyInput(key="k", position_id="p", stop_loss=D(95), take_profits=[D(130)])
    assert with_exchange_target(partial, modify).exchange_target == D(130)
