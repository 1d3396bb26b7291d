"""`python -m bench.faults`: the fault suite (tests/faults/, its long cases too), written to bench/FAULTS.md."""
