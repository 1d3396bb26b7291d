from decimal import Decimal as D

from workflows.position.paper import (
    Bar,
    PaperRules,
    fee,
    gross_pnl,
    market_fill_price,
    pnl_pct,
    size_for_stake,
    stop_fill_price,
    target_fill_price,
)

RULES = PaperRules(fee_pct=D("0.1"), slippage_pct=D("0.05"))


def bar(o, h, low, c) -> Bar:
    return Bar(open=D(o), high=D(h), low=D(low), close=D(c))


def test_market_entry_moves_against_the_trader():
    assert market_fill_price(D("100"), "long", True, RULES) == D("100.05")
    assert market_fill_price(D("100"), "short", True, RULES) == D("99.95")
    assert market_fill_price(D("100"), "long", False, RULES) == D("99.95")
    assert market_fill_price(D("100"), "short", False, RULES) == D("100.05")


def test_size_is_rounded_down_so_the_stake_is_never_exceeded():
    qty = size_for_stake(D("1000"), D("3"))
    assert qty == D("333.33333333") and qty * 3 <= 1000


def test_fee_is_a_percent_of_notional_exactly():
    assert fee(D("100.05"), D("10"), RULES) == D("1.00050000")
    assert fee(D("100"), D("1"), PaperRules()) == D("0.1")


def test_stop_fills_at_level_or_at_the_open_on_a_gap():
    assert stop_fill_price("long", D("95"), bar(100, 101, 94, 96)) == D("95")
    assert stop_fill_price("long", D("95"), bar(93, 94, 92, 93)) == D("93")
    assert stop_fill_price("long", D("95"), bar(100, 101, 95.5, 96)) is None
    assert stop_fill_price("short", D("105"), bar(100, 106, 99, 101)) == D("105")
    assert stop_fill_price("short", D("105"), bar(107, 108, 106, 107)) == D("107")


def test_target_fills_at_level_or_at_the_open_on_a_gap():
    assert target_fill_price("long", D("110"), bar(100, 111, 99, 105)) == D("110")
    assert target_fill_price("long", D("110"), bar(112, 113, 111, 112)) == D("112")
    assert target_fill_price("long", D("110"), bar(100, 109, 99, 105)) is None
    assert target_fill_price("short", D("90"), bar(100, 101, 89, 95)) == D("90")


def test_pnl_is_exact_for_both_sides():
    assert gross_pnl("long", D("100.05"), D("110"), D("9.99500249")) == D("99.45027478")
    assert gross_pnl("short", D("100"), D("90"), D("2")) == D("20")
    assert pnl_pct("long", D("100"), D("95")) == D("-5.0000")
    assert pnl_pct("short", D("100"), D("95")) == D("5.0000")
