"""Binance market data, once for every process that reads it: the bridge, the operator commands,
the dev stack, the backtest and the fake exchange.

A top-level package because none of those owns it: each is a process of its own (one folder per
process) and must not import another's folder, yet all of them speak the same `GET /api/v3/klines`
and the same candle. `intervals` and `candle` are pure (no I/O, nothing beyond the standard library
and pydantic), so workflow code may use them; `rest` is the one httpx fetch. Nothing is imported
here, so importing a pure module never pulls in httpx."""
