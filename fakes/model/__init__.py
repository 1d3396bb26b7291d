"""An OpenAI-compatible stand-in for the `model` decision backend (a rule, not a model)."""

from .rule import decide
from .server import FAULTS, STANDIN_MODEL, FakeModel

__all__ = ["FAULTS", "STANDIN_MODEL", "FakeModel", "decide"]
