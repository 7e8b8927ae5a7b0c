"""The embedded PostgreSQL's system user is created by one process at a time.

On a fresh machine pytest-xdist's workers start their servers together; two ``useradd`` runs at
once each rewrite /etc/passwd from what they read, one user is lost, and the files chowned to
its uid can no longer be read by the user that remains (initdb: "Permission denied")."""

from __future__ import annotations

import pwd
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from scripts.devstack import postgres


class SlowUseradd:
    """``ensure_user_exists`` that takes a while and records how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most_at_once = 0
        self.calls = 0
        self._guard = threading.Lock()

    def ensure_user_exists(self, username: str) -> Any:
        with self._guard:
            self.running += 1
            self.calls += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.05)
        with self._guard:
            self.running -= 1
        return SimpleNamespace(pw_name=username, pw_uid=4242, pw_gid=4242)


def _no_such_user(name: str) -> Any:
    raise KeyError(name)


@pytest.fixture
def useradd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SlowUseradd:
    fake = SlowUseradd()
    monkeypatch.setattr(postgres, "_embedded", lambda: SimpleNamespace(utils=fake))
    monkeypatch.setattr(pwd, "getpwnam", _no_such_user)
    monkeypatch.setattr(postgres, "USER_LOCK", tmp_path / "locks" / "user.lock")
    return fake


def test_processes_starting_together_create_the_user_one_at_a_time(useradd: SlowUseradd) -> None:
    # Given four starts at once on a machine without the user (each its own open of the lock
    # file, as separate processes have)
    entries: list[Any] = []
    threads = [
        threading.Thread(target=lambda: entries.append(postgres._system_user())) for _ in range(4)
    ]

    # When they all ask for the system user
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each got it, and no two ran useradd at the same time
    assert useradd.calls == 4
    assert useradd.most_at_once == 1
    assert {entry.pw_uid for entry in entries} == {4242}


def test_an_existing_user_is_read_without_the_lock(
    useradd: SlowUseradd, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a machine where the user exists
    existing = SimpleNamespace(pw_name=postgres.SYSTEM_USER, pw_uid=1002, pw_gid=1002)
    monkeypatch.setattr(pwd, "getpwnam", lambda name: existing)

    # Then its entry comes back, with no useradd and no lock file
    assert postgres._system_user() is existing
    assert useradd.calls == 0
    assert not postgres.USER_LOCK.exists()
