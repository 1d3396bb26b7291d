"""Every command's exit codes, and the one way a command reports an error before it exits."""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
# The database lacks a table or column the monitor needs (e.g. user_subscriptions, or the monitor's
# own columns before `signal-monitor migrate`): fix the schema, do not restart in a loop.
EXIT_SCHEMA = 3


def fail(error: object, code: int = EXIT_ERROR, what: str = "") -> int:
    """Print `error: <what><error>` on stderr; return `code`, the command's exit code."""
    print(f"error: {what}{error}", file=sys.stderr)
    return code
