from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from lambdas.migrations.plan import LedgerEntry, plan_migrations
from lambdas.shared.migration_files import normalise


@dataclass(frozen=True)
class File:
    version: int
    filename: str
    checksum: str


def _file(version: int, name: str = "step", checksum: str | None = None) -> File:
    filename = f"{version:03d}_{name}.sql"
    return File(version, filename, checksum or f"sum-{filename}")


def _applied(file: File, *, checksum: str | None = None, success: bool = True) -> LedgerEntry:
    return LedgerEntry(file.version, file.filename, checksum or file.checksum, success)


def test_everything_is_pending_on_an_empty_ledger_in_version_order() -> None:
    files = [_file(2), _file(1), _file(10)]

    plan = plan_migrations(files, [])

    assert plan.ok
    assert [f.version for f in plan.pending] == [1, 2, 10]


def test_applied_files_are_not_pending() -> None:
    one, two = _file(1), _file(2)

    plan = plan_migrations([one, two], [_applied(one)])

    assert plan.pending == [two]
    assert plan.applied == [_applied(one)]


def test_a_failed_ledger_row_leaves_its_file_pending() -> None:
    one = _file(1)

    plan = plan_migrations([one], [_applied(one, success=False)])

    assert plan.ok
    assert plan.pending == [one]


def test_a_changed_applied_file_is_refused_with_both_checksums() -> None:
    one = _file(1, "tenants", checksum="new-sum")

    plan = plan_migrations([one], [_applied(one, checksum="old-sum")])

    assert not plan.ok
    [refusal] = plan.refusals
    assert "001_tenants.sql" in refusal
    assert "old-sum" in refusal
    assert "new-sum" in refusal
    assert plan.drift[0].filename == "001_tenants.sql"


def test_two_files_with_the_same_version_are_refused_naming_both() -> None:
    files = [_file(8, "billing"), _file(9, "leads"), _file(9, "leads_again")]

    plan = plan_migrations(files, [])

    assert not plan.ok
    assert plan.refusals == ["009_leads.sql, 009_leads_again.sql: 2 files share version 9"]


def test_a_new_file_below_the_latest_applied_version_is_refused() -> None:
    one, two, three = _file(1), _file(2, "late"), _file(3)

    plan = plan_migrations([one, two, three], [_applied(one), _applied(three)])

    assert not plan.ok
    assert "002_late.sql" in plan.refusals[0]
    assert "below the latest applied version 3" in plan.refusals[0]


def test_out_of_order_files_run_when_explicitly_allowed() -> None:
    one, two, three = _file(1), _file(2, "late"), _file(3)

    plan = plan_migrations(
        [one, two, three], [_applied(one), _applied(three)], allow_out_of_order=True
    )

    assert plan.ok
    assert plan.pending == [two]


def test_an_applied_version_whose_file_is_gone_is_refused_when_newer_files_exist() -> None:
    one, two, three = _file(1), _file(2, "dropped"), _file(3)

    plan = plan_migrations([one, three], [_applied(one), _applied(two)])

    assert not plan.ok
    assert "002_dropped.sql" in plan.refusals[0]
    assert "missing" in plan.refusals[0]


def test_a_database_ahead_of_the_bundle_is_reported_not_refused() -> None:
    one, two, three = _file(1), _file(2), _file(3)

    plan = plan_migrations([one], [_applied(one), _applied(two), _applied(three)])

    assert plan.ok
    assert plan.pending == []
    assert [entry.version for entry in plan.ahead] == [2, 3]


@pytest.mark.parametrize(
    "content",
    [b"SELECT 1;\r\nSELECT 2;\r\n", b"\xef\xbb\xbfSELECT 1;\nSELECT 2;\n"],
    ids=["crlf", "bom"],
)
def test_checksums_ignore_line_endings_and_the_bom(content: bytes) -> None:
    expected = hashlib.sha256(b"SELECT 1;\nSELECT 2;\n").hexdigest()

    assert hashlib.sha256(normalise(content).encode()).hexdigest() == expected
