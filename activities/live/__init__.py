"""The live execution backend: Binance spot through ccxt, exactly once (see docs/live-orders.md).

Pure rules (client ids, filters, error classes, fills) are plain modules with unit tests; `venue`
is the one place that talks to the exchange; `backend` holds the four activities' live halves."""
