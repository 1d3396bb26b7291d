"""The README's sample output: what a console line becomes in the README, and what the drift check
tells apart (devstack/sample_output.py; the run itself is tests/devstack/test_stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.sample_output import BEGIN, END, README, drift, read_block, readme_form, write_block

CONSOLE = [
    "[dev] Temporal dev server on 127.0.0.1:41234, state in .dev-state/temporal.db; UI http://localhost:41235",
    "[dev] database URL: postgresql://postgres:@/signal_monitor?host=/tmp/signal-monitor-sample-x1/.dev-state/postgres",
    "[dev] Binance: local replay of real recorded market data at ws://127.0.0.1:50001, starting 20 min in the past",
    "[dev] demo signal 6adbe952-c95b-4f41-a46f-27a1064734fc: BTCUSDT 1m at 43093.7 (close of the candle ending 23:59 UTC)",
    "[dev] Temporal UI: http://localhost:41235/namespaces/default/workflows/signal-6adbe952-c95b-4f41-a46f-27a1064734fc",
    "",
    "[dev] analysis #1 on candle 2026-12-08 00:00 UTC: wait (62%) -> continue",
    "[dev] managed candle 2026-12-08 00:02 UTC: hold (65%)   ",
]


def test_the_readme_form_keeps_the_story_and_drops_what_each_run_changes():
    scratch = Path("/tmp/signal-monitor-sample-x1")
    lines = readme_form(CONSOLE, temporal_port=41234, ui_port=41235, scratch=scratch)
    assert lines == [
        "[dev] Temporal dev server on 127.0.0.1:7233, state in .dev-state/temporal.db; UI http://localhost:8233",
        "[dev] database URL: postgresql://postgres:@/signal_monitor?host=…/.dev-state/postgres",
        "[dev] Binance: local replay of real recorded market data at ws://127.0.0.1:<port>, starting 20 min in the past",
        "[dev] demo signal <uuid>: BTCUSDT 1m at 43093.7 (close of the candle ending <T> UTC)",
        "[dev] Temporal UI: http://localhost:8233/namespaces/default/workflows/signal-<uuid>",
        # Across midnight: one minute after 23:59 is <T+1m>, whatever the date says.
        "[dev] analysis #1 on candle <T+1m> UTC: wait (62%) -> continue",
        "[dev] managed candle <T+3m> UTC: hold (65%)",
    ]


def test_candle_spans_and_the_command_to_paste_are_normalised_too():
    scripts = Path("/srv/checkout/.venv/bin")
    lines = readme_form(
        [
            "[dev] demo signal: BTCUSDT 1m at 43093.7 (the close of candle 2026-12-07 14:14–14:15 UTC)",
            "[dev] analysis #1 on candle 2026-12-07 23:59–2026-12-08 00:00 UTC (close 43100.5): wait",
            "[dev] see it as a trader would: `/srv/checkout/.venv/bin/signal-monitor positions`",
        ],
        temporal_port=1,
        ui_port=2,
        scripts=scripts,
    )
    assert lines == [
        "[dev] demo signal: BTCUSDT 1m at 43093.7 (the close of candle <T>–<T+1m> UTC)",
        "[dev] analysis #1 on candle <T+585m>–<T+586m> UTC (close 43100.5): wait",
        "[dev] see it as a trader would: `.venv/bin/signal-monitor positions`",
    ]
    # An activated venv prints the bare command: the same line to the drift check.
    assert drift(["[dev] see it as a trader would: `signal-monitor positions`"], lines[2:]) == []


def test_an_absolute_state_path_is_shortened_without_knowing_the_scratch_directory():
    (line,) = readme_form(["[dev] state in /home/a b/.dev-state/temporal.db"], temporal_port=1, ui_port=2)
    assert line == "[dev] state in /home/a b/.dev-state/temporal.db"  # a space ends a path: left as is
    (line,) = readme_form(["[dev] PostgreSQL ready (embedded, /srv/x/.dev-state/postgres)"], temporal_port=1, ui_port=2)
    assert line == "[dev] PostgreSQL ready (embedded, …/.dev-state/postgres)"


def test_drift_ignores_times_numbers_and_repeats_but_not_words():
    shown = [
        "[dev] analysis #1 on candle <T+1m> UTC: wait (62%) -> continue",
        "[dev] candle_closed signals received 1 (duplicates 0, stale 1, skipped 0)",
        "[dev] position opened (paper): long 0.02317521 BTCUSDT at 43149.553995",
        "[dev] position closed (close_action): exit 43106.426005, realized P&L -3.42017181",
    ]
    printed = [
        "[dev] analysis #1 on candle <T+2m> UTC: wait (62%) -> continue",
        "[dev] candle_closed signals received 1 (duplicates 0, stale 0, skipped 0)",
        "[dev] candle_closed signals received 2 (duplicates 0, stale 0, skipped 1)",
        "[dev] position opened (paper): long 0.02316541 BTCUSDT at 43167.79311",
        "[dev] position closed (close_action): exit 43248.42497, realized P&L +0.2890643",
        "[dev] replay clock caught up with the wall clock; it now runs at real time",  # timing alone
    ]
    assert drift(printed, shown) == []
    # Which kinds of closes a monitor set aside depends on the run: those lines count by their start.
    varying = [
        "[dev] candle closes received 2, none set aside",
        "[dev] candle closes received 3, set aside: 1 stale (closed no later than the signal: already seen, normal)",
    ]
    assert drift(varying[:1], varying[1:]) == []
    # How the demo position ends depends on the candle it lands on: the model's close or a target.
    by_model = [
        "[dev] managed candle <T+3m>–<T+4m> UTC: hold (65%)",
        "[dev] managed candle <T+5m>–<T+6m> UTC: close (75%)",
        "[dev] position closed (close_action: closed by the model on candle <T+5m>–<T+6m> UTC): exit fill at 1",
    ]
    by_target = [
        "[dev] managed candle <T+4m>–<T+5m> UTC: close",
        "[dev] position closed (take_profit: take_profit reached at 2 on candle <T+4m>–<T+5m> UTC): exit fill at 2",
    ]
    assert drift(by_target, by_model) == []
    assert drift(["[dev] position reopened"], by_model)
    reworded = [
        *printed[:3],
        *printed[4:],
        "[dev] position opened (paper): long 0.02316541 BTCUSDT at 43167.79311 (fill)",
    ]
    problems = drift(reworded, shown)
    assert len(problems) == 2, problems
    assert problems[0].startswith("printed by the stack, missing from the README's sample: ")
    assert problems[0].endswith("(fill)")
    assert problems[1].startswith("in the README's sample, not printed by the stack: [dev] position opened")


def test_the_block_is_read_and_written_between_the_markers_only():
    text = f"# title\n\nbefore\n\n{BEGIN}\n```text\nold line\n```\n{END}\n\nafter\n"
    assert read_block(text) == ["old line"]
    written = write_block(text, ["[dev] one", "[dev] two"])
    assert read_block(written) == ["[dev] one", "[dev] two"]
    assert written.startswith("# title\n\nbefore\n\n") and written.endswith(f"{END}\n\nafter\n")
    assert write_block(written, ["[dev] one", "[dev] two"]) == written


def test_the_readme_has_a_sample_block_of_dev_console_lines():
    block = read_block(README.read_text())
    assert len(block) >= 10 and all(line.startswith("[dev] ") for line in block), block
    with pytest.raises(ValueError):
        read_block("no markers here")
