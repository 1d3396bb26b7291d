"""Long fault cases, run on demand: `python -m bench.faults` (writes bench/FAULTS.md)."""
