from __future__ import annotations

from types import TracebackType

import psycopg

from lambdas.health.service import check_health


class FakeLedger:
    def __init__(self, applied: set[int]) -> None:
        self.applied = applied

    def applied_versions(self) -> set[int]:
        return self.applied


class FakeHealthUnitOfWork:
    def __init__(self, applied: set[int] | None = None, fail: bool = False) -> None:
        self._ledger = FakeLedger(applied or set())
        self._fail = fail
        self.entered = False

    @property
    def ledger(self) -> FakeLedger:
        return self._ledger

    def __enter__(self) -> FakeHealthUnitOfWork:
        if self._fail:
            raise psycopg.OperationalError("connection refused")
        self.entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def test_all_bundled_migrations_applied_is_healthy() -> None:
    uow = FakeHealthUnitOfWork({1, 2, 3})

    report = check_health(lambda: uow, environment="prod", bundled_versions=[1, 2, 3])

    assert report.ok is True
    assert report.environment == "prod"
    assert report.db_status == "connected"
    assert report.migrations.model_dump() == {
        "state": "current",
        "applied": 3,
        "latest": 3,
        "pending": 0,
    }


def test_a_bundled_file_not_yet_applied_is_pending() -> None:
    report = check_health(
        lambda: FakeHealthUnitOfWork({1, 2}), environment="dev", bundled_versions=[1, 2, 3]
    )

    assert report.ok is False
    assert report.migrations.pending == 1
    assert report.migrations.latest == 2


def test_a_database_ahead_of_the_bundle_is_not_pending() -> None:
    # A rollback to older code: the database has more than the bundle carries, nothing to apply.
    report = check_health(
        lambda: FakeHealthUnitOfWork({1, 2, 3, 4}), environment="dev", bundled_versions=[1, 2]
    )

    assert report.ok is True
    assert report.migrations.pending == 0
    assert report.migrations.latest == 4


def test_an_unreachable_database_is_reported_not_raised() -> None:
    report = check_health(
        lambda: FakeHealthUnitOfWork(fail=True), environment="dev", bundled_versions=[1]
    )

    assert report.ok is False
    assert report.db_status == "unreachable"
    # nothing is known about the schema while the database cannot be asked
    assert report.migrations.model_dump() == {
        "state": "unknown",
        "applied": None,
        "latest": None,
        "pending": None,
    }
