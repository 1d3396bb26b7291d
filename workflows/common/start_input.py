"""A workflow's start input as its `@workflow.init` reads it: validated there rather than by the
data converter, so that an input the workflow cannot use fails the workflow (in `run`, with the
refusal kept here) and never its task over and over. Only callable from workflow code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.common.patches import CANONICAL_SIGNAL_ID_PATCH

Start = TypeVar("Start")


def started_or_refused(
    parse_start: Callable[[tuple[object, ...], str, Callable[[], bool]], Start], args: tuple[object, ...]
) -> tuple[Start | None, ApplicationError | None]:
    """`parse_start` (the workflow's `inputs.parse_start`) over the raw start arguments under this
    workflow's id: the input, or None and the refusal that fails the run. Only a non-canonical
    spelling of the id asks `workflow.patched(CANONICAL_SIGNAL_ID_PATCH)`."""
    try:
        return parse_start(args, workflow.info().workflow_id, lambda: workflow.patched(CANONICAL_SIGNAL_ID_PATCH)), None
    except ApplicationError as err:
        return None, err
