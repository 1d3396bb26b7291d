"""A reduce whose remainder is worth less than the minimum order closes the whole position (pure)."""

from __future__ import annotations

from decimal import Decimal as D

from workflows.position.actions import closing_the_rest, leaves_dust, validate_action


def test_a_dust_remainder_becomes_a_close_saying_why():
    action = validate_action("reduce", {"reduceAmount": 0.99999999999}, "long", D(100), D(10))
    assert action.action == "reduce" and action.reduce_quantity == D("9.99999999")
    assert leaves_dust(action, D(10), D(100))
    closed = closing_the_rest(action, D(10), D(100))
    assert closed.action == "close" and closed.requested == "reduce" and closed.held_reason is None
    assert "would leave 0.00000001" in (closed.note or "") and "below the minimum order value 5" in (closed.note or "")


def test_a_real_remainder_stays_a_reduce():
    half = validate_action("reduce", {"reduceAmount": 0.5}, "long", D(100), D(10))
    assert not leaves_dust(half, D(10), D(100))
    # 0.04 left at 100 is worth 4: under the minimum.
    most = validate_action("reduce", {"reduceAmount": 0.996}, "short", D(100), D(10))
    assert leaves_dust(most, D(10), D(100))
    assert not leaves_dust(validate_action("hold", None, "long", D(100), D(10)), D(10), D(100))
