"""`signal-monitor backtest`: a recorded market run through the real monitor workflow on Temporal's
time-skipping test server and a throwaway PostgreSQL, then scored.

Modules: `inputs` (candles, signals, trader settings: pure parsing, plus the Binance REST fetch),
`trades` (a trade, and whether a signal not entered would have won: pure), `report` (the figures and their printing:
pure), `chart` (plotly rendering), `gate` (the llm-proxy call cap and per-signal call/token counts),
`sandbox` (the throwaway PostgreSQL + time-skipping server), `spec` (a run's inputs and its
estimate: pure), `feed` (the series fed to the running workflows), `outcomes` (what each signal came
to), `engine` (one run), `policies` (the local stand-in's prompt versions), `command` (the CLI)."""
