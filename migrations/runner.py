"""`signal-monitor migrate`: apply pending numbered SQL files once, in order, each in its own
transaction, and record them. Re-running is a no-op; a broken file stops the run with its name
and PostgreSQL's error, leaving earlier files applied and that one not."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent
_FILE_NAME = re.compile(r"^(\d+)_[\w.-]+\.sql$")
# Any fixed key: serialises concurrent `migrate` runs (two workers starting at once).
_LOCK_KEY = 0x5167_4D6F
# Files revised in place before any platform database applied them (001: the platform's index
# name; 002: the status constraint keeps existing values). A database that applied an earlier
# text is fine as it is (005 completes it), so those checksums are expected, not a warning.
_EARLIER_CHECKSUMS = {
    "001_platform_tables.sql": {"5c84ae0f45331a9a55f1836262297fce0aa241fd5b4344054911659d54c48d43"},
    "002_signal_monitoring.sql": {"bf639591d1be0e0237ac0d2ae8d045db4bb6ecdf0a519c4067fc2e96b28e5e20"},
}


class MigrationError(RuntimeError):
    def __init__(self, file_name: str, error: Exception):
        detail = getattr(error, "message", None) or str(error)
        super().__init__(f"migration {file_name} failed: {type(error).__name__}: {detail}")
        self.file_name = file_name


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in directory.iterdir():
        match = _FILE_NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    found.sort(key=lambda m: (m.number, m.name))
    numbers = [m.number for m in found]
    if len(numbers) != len(set(numbers)):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return found


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Returns the names of the files applied by this run."""
    migrations = discover(directory)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS signal_monitor_migrations (
                   name text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        # Like every table in the platform's schema: no API user reads it (the owner bypasses RLS).
        if not await conn.fetchval(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'signal_monitor_migrations'::regclass"
        ):
            await conn.execute("ALTER TABLE signal_monitor_migrations ENABLE ROW LEVEL SECURITY")
        rows = await conn.fetch("SELECT name, checksum FROM signal_monitor_migrations")
        applied = {r["name"]: r["checksum"] for r in rows}
        done = []
        for m in migrations:
            if m.name in applied:
                if applied[m.name] != m.checksum and applied[m.name] not in _EARLIER_CHECKSUMS.get(m.name, ()):
                    log.warning("migration %s changed after it was applied; not re-applied", m.name)
                continue
            try:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO signal_monitor_migrations (name, checksum) VALUES ($1, $2)",
                        m.name,
                        m.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(m.name, exc) from exc
            log.info("applied migration %s", m.name)
            done.append(m.name)
        return done
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        finally:
            await conn.close()
