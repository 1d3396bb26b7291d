"""Structured (JSON lines) or plain logs for every process. Temporal's workflow and activity
loggers add a `temporal_workflow` / `temporal_activity` dict; we lift its ids into the line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from runtime.config import Settings, secret_values
from runtime.redaction import Redactor

_TEMPORAL_KEYS = ("workflow_id", "run_id", "workflow_type", "activity_type", "activity_id", "attempt", "task_queue")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("temporal_workflow", "temporal_activity"):
            details = getattr(record, key, None)
            if isinstance(details, dict):
                line.update({k: details[k] for k in _TEMPORAL_KEYS if k in details})
        for key in ("signal_id", "symbol", "interval", "event"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _Redacting(logging.Formatter):
    """Masks this process's secrets in every formatted line, tracebacks included: whatever a
    library quotes (a header value, a repr, bytes) never reaches the log."""

    def __init__(self, inner: logging.Formatter, redact: Redactor):
        super().__init__()
        self._inner = inner
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(self._inner.format(record))


def setup_logging(settings: Settings | None = None, default_format: str = "text") -> None:
    """`settings` None: the defaults (settings that do not load are being reported)."""
    level = settings.log_level if settings is not None else "INFO"
    fmt = (settings.log_format if settings is not None else None) or default_format
    handler = logging.StreamHandler(sys.stderr)
    formatter = (
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    redact = Redactor(secret_values())
    handler.setFormatter(_Redacting(formatter, redact) if redact else formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; keep it quiet, the activity logs what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
