from decimal import Decimal as D

from tests.helpers.books import long_book
from workflows.position.paper import Bar
from workflows.position.risk import Book, RiskSettings, check, effective_stop, usable_levels


def bar(o, h, low, c) -> Bar:
    return Bar(open=D(o), high=D(h), low=D(low), close=D(c))


def book(**kw) -> Book:
    return Book(**{"side": "long", **long_book(), **kw})


def test_stop_first_when_one_candle_reaches_both():
    out = check(book(), RiskSettings(), bar(100, 111, 94, 100))
    assert out.closes_position and [(e.kind, e.price, e.quantity) for e in out.exits] == [("stop_loss", D(95), D(10))]


def test_no_levels_reached_changes_nothing_but_the_best_price():
    out = check(book(), RiskSettings(), bar(100, 103, 99, 102))
    assert out.exits == [] and not out.closes_position and out.best_price == D(103)


def test_partial_take_profit_then_full():
    settings = RiskSettings(partial_take_profit_levels=[D(25), D(50), D(75)])
    first = check(book(), settings, bar(100, 106, 99, 105))
    assert [(e.kind, e.price, e.quantity) for e in first.exits] == [("take_profit", D(105), D("2.5"))]
    assert not first.closes_position and first.targets_hit == 1
    second = check(book(quantity=D("7.5"), targets_hit=1), settings, bar(106, 112, 105, 111))
    assert [(e.price, e.quantity) for e in second.exits] == [(D(110), D("7.5"))] and second.closes_position


def test_both_targets_in_one_candle_fill_in_order_and_without_levels_the_first_closes_all():
    settings = RiskSettings(partial_take_profit_levels=[D(50)])
    out = check(book(), settings, bar(100, 112, 99, 111))
    assert [(e.price, e.quantity) for e in out.exits] == [(D(105), D(5)), (D(110), D(5))]
    out = check(book(), RiskSettings(), bar(100, 106, 99, 105))
    assert [(e.price, e.quantity) for e in out.exits] == [(D(105), D(10))] and out.closes_position


def test_trailing_stop_follows_the_best_price_of_earlier_candles():
    settings = RiskSettings(use_trailing_stop=True, trailing_stop_distance=D(2))
    b = book(stop_loss=D(90), take_profits=[D(200)], best_price=D(110))
    assert effective_stop(b, settings) == ("trailing_stop", D("107.8"))
    out = check(b, settings, bar(109, 109.5, 107, 108))
    assert [(e.kind, e.price) for e in out.exits] == [("trailing_stop", D("107.8"))]


def test_max_loss_is_a_stop_at_that_distance_from_the_entry():
    settings = RiskSettings(max_loss_per_position=D(3))
    b = book(stop_loss=None, take_profits=[])
    out = check(b, settings, bar(99, 99.5, 96.5, 97))
    assert [(e.kind, e.price) for e in out.exits] == [("max_loss", D(97))]
    # A tighter explicit stop names the exit.
    assert effective_stop(book(stop_loss=D(98)), settings) == ("stop_loss", D(98))


def test_short_position_mirrors():
    b = book(side="short", stop_loss=D(105), take_profits=[D(95)], best_price=D(100))
    assert check(b, RiskSettings(), bar(100, 106, 94, 100)).exits[0].kind == "stop_loss"
    out = check(b, RiskSettings(), bar(100, 101, 94, 96))
    assert [(e.kind, e.price) for e in out.exits] == [("take_profit", D(95))]


def test_levels_on_the_wrong_side_of_the_entry_are_dropped():
    assert usable_levels("long", D(100), D(101), [D(99), D(110), D(105)]) == (None, [D(105), D(110)])
    assert usable_levels("short", D(100), D(105), [D(90), D(95), D(101)]) == (D(105), [D(95), D(90)])
