"""What the tests share (no tests here): `support` (rows, klines, waiting), `servers` (binaries and
databases), `monitor` and `positions` (a worker around the workflows), `bridge`, `processes` (the
product's commands as subprocesses), `restarts` and `fault_checks` (the fault cases' servers and
three checks), `platform_shape` (the platform's schema), `replay` (reading and replaying recorded
histories), `contexts` (the monitor's and the position's context for the pure workflow tests),
`browser` (the Chromium of the browser tests)."""
