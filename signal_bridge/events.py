"""Structured log lines: `event key=value ...` for humans, the same fields under `extra` for a
JSON formatter."""

from __future__ import annotations

import logging

log = logging.getLogger("signal_bridge")


def emit(event: str, level: int = logging.INFO, **fields: object) -> None:
    if not log.isEnabledFor(level):
        return
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    extra: dict[str, object] = {"event": event, "bridge_fields": fields}
    # The JSON log formatter lifts these into their own keys.
    for key in ("symbol", "interval"):
        if key in fields:
            extra[key] = fields[key]
    log.log(level, "%s %s", event, text, extra=extra)
