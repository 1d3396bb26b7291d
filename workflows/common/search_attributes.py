"""Typed search attributes of a signal monitor: what operators filter on in the Temporal UI
and what the bridge reads to know which kline streams to watch."""

from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributeUpdate, TypedSearchAttributes

SIGNAL_SYMBOL = SearchAttributeKey.for_keyword("SignalSymbol")
SIGNAL_INTERVAL = SearchAttributeKey.for_keyword("SignalInterval")
TRADER_ID = SearchAttributeKey.for_keyword("TraderId")
MONITOR_STATUS = SearchAttributeKey.for_keyword("MonitorStatus")
REANALYSES = SearchAttributeKey.for_int("Reanalyses")
# Position managers carry SignalSymbol/SignalInterval/TraderId too (the bridge routes by them).
POSITION_STATUS = SearchAttributeKey.for_keyword("PositionStatus")

ALL: tuple[SearchAttributeKey[str] | SearchAttributeKey[int], ...] = (
    SIGNAL_SYMBOL,
    SIGNAL_INTERVAL,
    TRADER_ID,
    MONITOR_STATUS,
    REANALYSES,
    POSITION_STATUS,
)


def monitor_changed(
    current: TypedSearchAttributes, symbol: str, interval: str, trader_id: str, status: str, reanalyses: int
) -> list[SearchAttributeUpdate]:
    """The upserts that bring the monitor's search attributes to these values (none when equal)."""
    keywords = [(SIGNAL_SYMBOL, symbol), (SIGNAL_INTERVAL, interval), (TRADER_ID, trader_id), (MONITOR_STATUS, status)]
    return _upserts(current, [*keywords, (REANALYSES, reanalyses)])


def position_changed(
    current: TypedSearchAttributes, symbol: str, interval: str, trader_id: str, status: str
) -> list[SearchAttributeUpdate]:
    """The upserts that bring a position manager's search attributes to these values (none when equal)."""
    keywords = [(SIGNAL_SYMBOL, symbol), (SIGNAL_INTERVAL, interval), (TRADER_ID, trader_id), (POSITION_STATUS, status)]
    return _upserts(current, keywords)


def _upserts(current: TypedSearchAttributes, wanted: list[tuple[Any, Any]]) -> list[SearchAttributeUpdate]:
    # Only what differs: an upsert is a history event, and these run at every candle.
    return [key.value_set(value) for key, value in wanted if current.get(key) != value]
