"""What the fake received: one record per request, with the bearer key reduced to `authorized`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .steps import Step


@dataclass
class RecordedRequest:
    """One request the fake received. ``headers`` has lower-case names and never contains
    ``authorization``; ``authorized`` says whether its bearer key was the configured one."""

    method: str
    path: str
    headers: dict[str, str]
    authorized: bool
    body: Any  # parsed JSON, or None when it was not JSON
    body_text: str | None  # the raw text when the body was not JSON, else None
    received_at: datetime  # UTC
    monotonic: float
    status: int | None = None  # HTTP status answered; None for a disconnect / client gone
    outcome: str = "pending"  # answered | rejected | disconnect | truncated | client_gone | stopped
    step: Step | None = None  # what was answered (None for auth/validation rejections)
    completed_monotonic: float | None = None

    @property
    def params(self) -> dict[str, Any]:
        if isinstance(self.body, dict) and isinstance(self.body.get("params"), dict):
            return self.body["params"]
        return {}

    @property
    def signal_id(self) -> Any:
        return self.params.get("signalId")

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get("x-correlation-id")

    @property
    def trigger_source(self) -> str | None:
        return self.headers.get("x-trigger-source")
