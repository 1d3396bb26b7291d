"""The long fault cases run on the same real parts as the tests: the session's Temporal dev
server and PostgreSQL (tests/conftest.py), plus servers a case owns (tests/restarts.py)."""

from tests.conftest import *  # noqa: F403  (fixtures and hooks)
