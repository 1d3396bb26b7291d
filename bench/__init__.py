"""Benchmarks: how much the monitor (and the position manager) adds on top of Temporal, at one
signal and at a thousand.

`python -m bench` (a few minutes on 2 cores) or `python -m bench --quick` (about a minute and a
half). Every figure is a ratio against the bare floor (bench/floor.py) measured in the same run on
the same Temporal dev server. The last lines are one per goal: `<name> <measured> <goal> PASS|MISS`.
See bench/RESULTS.md for what each name means and the latest figures."""
