"""Typed search attributes of a signal monitor: what operators filter on in the Temporal UI
and what the bridge reads to know which kline streams to watch."""

from temporalio.common import SearchAttributeKey

SIGNAL_SYMBOL = SearchAttributeKey.for_keyword("SignalSymbol")
SIGNAL_INTERVAL = SearchAttributeKey.for_keyword("SignalInterval")
TRADER_ID = SearchAttributeKey.for_keyword("TraderId")
MONITOR_STATUS = SearchAttributeKey.for_keyword("MonitorStatus")
REANALYSES = SearchAttributeKey.for_int("Reanalyses")
# Position managers carry SignalSymbol/SignalInterval/TraderId too (the bridge routes by them).
POSITION_STATUS = SearchAttributeKey.for_keyword("PositionStatus")

ALL = (SIGNAL_SYMBOL, SIGNAL_INTERVAL, TRADER_ID, MONITOR_STATUS, REANALYSES, POSITION_STATUS)
