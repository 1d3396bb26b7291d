from decimal import Decimal as D

from workflows.position.actions import validate_action


def test_hold_and_close_pass():
    assert validate_action("close", None, "long", D(100), D(1)).action == "close"
    assert validate_action("hold", {}, "long", D(100), D(1)).action == "hold"


def test_impossible_stop_is_held_with_its_reason():
    v = validate_action("adjust_sl", {"newStopLoss": 101}, "long", D(100), D(1))
    assert v.action == "hold" and v.requested == "adjust_sl" and v.held_reason is not None
    assert "at or above the market price 100" in v.held_reason
    assert validate_action("adjust_sl", {}, "long", D(100), D(1)).action == "hold"
    assert validate_action("adjust_sl", {"newStopLoss": "abc"}, "long", D(100), D(1)).action == "hold"
    ok = validate_action("adjust_sl", {"newStopLoss": 97.5}, "long", D(100), D(1))
    assert ok.action == "adjust_sl" and ok.new_stop_loss == D("97.5")
    assert validate_action("adjust_sl", {"newStopLoss": 99}, "short", D(100), D(1)).action == "hold"


def test_take_profit_below_the_market_is_held():
    assert validate_action("adjust_tp", {"newTakeProfit": [99, 120]}, "long", D(100), D(1)).action == "hold"
    assert validate_action("adjust_tp", {"newTakeProfit": []}, "long", D(100), D(1)).action == "hold"
    ok = validate_action("adjust_tp", {"newTakeProfit": [120, 110]}, "long", D(100), D(1))
    assert ok.new_take_profits == [D(110), D(120)]
    ok = validate_action("adjust_tp", {"newTakeProfit": 90}, "short", D(100), D(1))
    assert ok.new_take_profits == [D(90)]


def test_reduce_of_nothing_or_everything_is_held():
    for amount in (0, 1, 1.5, -0.2, None, True):
        assert validate_action("reduce", {"reduceAmount": amount}, "long", D(100), D(2)).action == "hold"
    ok = validate_action("reduce", {"reduceAmount": 0.25}, "long", D(100), D(2))
    assert ok.action == "reduce" and ok.reduce_quantity == D("0.5")
    assert validate_action("reduce", {"reduceAmount": 0.5}, "long", D(100), D("0.00000001")).action == "hold"
