"""The dev stack's lock and address file: trusted only while the stack holds the lock."""

from __future__ import annotations

import os

import pytest

from devstack.state import StackInfo, StackLock, StackRunning, apply_to_environment, read_running, without_password


def test_addresses_are_read_only_while_the_stack_holds_its_lock_and_the_environment_wins(tmp_path, monkeypatch):
    lock = StackLock(tmp_path)
    lock.acquire()
    lock.publish(
        StackInfo(pid=4242, database_url="postgresql://postgres@/db?host=/x", temporal_address="127.0.0.1:7999")
    )
    with pytest.raises(StackRunning, match="pid 4242"):
        StackLock(tmp_path).acquire()  # a second stack refuses
    for name in (
        "DATABASE_URL",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_UI_URL",
        "BINANCE_REST_URL",
        "BINANCE_WS_URL",
        "SIGNAL_MONITOR_TASK_QUEUE",
    ):
        # setenv first: delenv of an unset name records nothing, and what apply_to_environment
        # then sets would outlive the test (it leaked DATABASE_URL into later tests of the process).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "mine:7233")
    assert apply_to_environment(tmp_path) is not None
    assert os.environ["DATABASE_URL"] == "postgresql://postgres@/db?host=/x"
    assert os.environ["TEMPORAL_ADDRESS"] == "mine:7233"
    lock.release()
    assert read_running(tmp_path) is None and not (tmp_path / "stack.json").exists()


def test_a_file_left_by_a_killed_stack_is_ignored_and_replaced(tmp_path):
    (tmp_path / "stack.json").write_text('{"pid": 1, "temporal_address": "dead:1"}')
    assert read_running(tmp_path) is None  # nobody holds the lock
    lock = StackLock(tmp_path)
    lock.acquire()
    assert not (tmp_path / "stack.json").exists()
    lock.release()


def test_a_url_with_a_password_is_never_written_down():
    assert without_password("postgresql://u:secret@h:5432/db") is None
    assert without_password("postgresql://postgres:@/db?host=/tmp") == "postgresql://postgres:@/db?host=/tmp"
