"""Benchmarks: how much the monitor (and the position manager) adds on top of Temporal, at one
signal and at a thousand.

`python -m bench` (a few minutes on 2 cores) or `python -m bench --quick` (about a minute and a
half). Every figure is a ratio against the bare floor (bench/floor.py) measured in the same run on
the same Temporal dev server; section 10 (`--only same_work`) compares against the same-work floor
(bench/same_work_floor.py: the same llm-proxy call and row per candle, written plainly; see
docs/bench-same-work.md). The last lines are one per goal: `<name> <measured> <goal> PASS|MISS`.
See bench/RESULTS.md for what each name means and the latest figures."""
