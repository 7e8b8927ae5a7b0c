from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest

from lambdas.jobs.service import UnknownJob, run_job
from lambdas.shared.locks import LockBusy


class FakeLeases:
    def __init__(self, held: set[str] | None = None) -> None:
        self.held = held or set()
        self.taken: list[str] = []

    @contextmanager
    def __call__(self, name: str) -> Any:
        if name in self.held:
            raise LockBusy(f"lease {name} is held by runner-x")
        self.taken.append(name)
        yield


def test_a_job_runs_under_its_lease_and_reports_what_it_changed() -> None:
    leases = FakeLeases()

    report = run_job("expire_trials", {"expire_trials": lambda: 3}, leases)

    assert leases.taken == ["expire_trials"]
    assert report.ok is True
    assert report.skipped is False
    assert report.affected == 3


def test_a_job_whose_lease_is_held_is_skipped_not_failed() -> None:
    ran: list[int] = []

    def job() -> int:
        ran.append(1)
        return 1

    report = run_job("expire_trials", {"expire_trials": job}, FakeLeases(held={"expire_trials"}))

    assert ran == []
    assert report.ok is True
    assert report.skipped is True
    assert "runner-x" in (report.error or "")


def test_an_unknown_job_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownJob, match="expire_trials"):
        run_job("reindex", {"expire_trials": lambda: 0}, FakeLeases())


def test_a_failing_job_raises_so_the_schedule_sees_the_error() -> None:
    def boom() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        run_job("expire_trials", {"expire_trials": boom}, FakeLeases())
