"""How a workflow's main loop is left once it reaches an end: raised with the result, caught by
`run` (both workflows). Internal: it never leaves the workflow."""

from __future__ import annotations

from typing import Generic, TypeVar

Result = TypeVar("Result")


class Ended(Exception, Generic[Result]):
    """The workflow reached an end; carries its result out of the main loop."""

    def __init__(self, result: Result):
        super().__init__()
        self.result = result
