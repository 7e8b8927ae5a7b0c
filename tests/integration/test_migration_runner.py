"""The runner on real PostgreSQL: each test gets an empty database and its own files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from lambdas.migrations.ledger import RUNNER_VERSION
from lambdas.migrations.roles import RuntimeRole
from lambdas.migrations.runner import MigrationRunner, RunnerOptions
from lambdas.shared.migration_files import MIGRATIONS_DIR, discover
from scripts.devstack.postgres import free_port
from tests.support.database import RUNTIME_ROLE, TestDatabase
from tests.support.migrations import MigrationFolder, applied_files


@pytest.fixture
def folder(tmp_path: Path) -> MigrationFolder:
    return MigrationFolder(tmp_path / "migrations")


def _runner(db: TestDatabase, folder: MigrationFolder, **options: object) -> MigrationRunner:
    return MigrationRunner(
        db.owner_url,
        directory=folder.path,
        options=RunnerOptions(**options),  # type: ignore[arg-type]
    )


def _ledger(db: TestDatabase) -> list[tuple[int, str, bool]]:
    with db.owner() as conn:
        rows = conn.execute(
            "SELECT version, name, success FROM public.migrations ORDER BY version"
        ).fetchall()
    return [(row["version"], row["name"], row["success"]) for row in rows]


def _table_exists(db: TestDatabase, name: str) -> bool:
    with db.owner() as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (name,)).fetchone()
    return bool(row and row["found"])


def test_a_fresh_database_gets_every_bundled_file_in_order(empty_db, runtime_password) -> None:
    runner = MigrationRunner(
        empty_db.owner_url, runtime_role=RuntimeRole(RUNTIME_ROLE, runtime_password)
    )

    report = runner.apply()

    bundled = discover(MIGRATIONS_DIR)
    assert report.ok, report.error
    assert applied_files(report) == [f.filename for f in bundled]
    with empty_db.owner() as conn:
        rows = conn.execute(
            """
            SELECT version, name, checksum, success, runner_version, applied_by, execution_ms
            FROM public.migrations ORDER BY applied_at, version
            """
        ).fetchall()
    assert [r["version"] for r in rows] == [f.version for f in bundled]
    assert [r["checksum"] for r in rows] == [f.checksum for f in bundled]
    assert all(r["success"] and r["runner_version"] == RUNNER_VERSION for r in rows)
    assert all(r["applied_by"] == "postgres" and r["execution_ms"] >= 0 for r in rows)


def test_a_second_run_applies_nothing(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    folder.add("002_b.sql", "CREATE TABLE b (id int);")
    assert _runner(empty_db, folder).apply().ok

    report = _runner(empty_db, folder).apply()

    assert report.ok
    assert report.applied == []
    assert report.pending == []
    assert report.latest_version == 2
    assert len(_ledger(empty_db)) == 2


def test_an_edited_applied_file_is_refused_naming_it_and_both_checksums(empty_db, folder) -> None:
    path = folder.add("001_a.sql", "CREATE TABLE a (id int);")
    assert _runner(empty_db, folder).apply().ok
    before = discover(folder.path)[0].checksum
    path.write_text("CREATE TABLE a (id bigint);")
    folder.add("002_b.sql", "CREATE TABLE b (id int);")

    report = _runner(empty_db, folder).apply()

    assert not report.ok
    assert "001_a.sql" in (report.error or "")
    assert before in (report.error or "")
    assert discover(folder.path)[0].checksum in (report.error or "")
    assert not _table_exists(empty_db, "public.b"), "nothing runs after a refusal"


def test_two_files_with_one_version_are_refused_naming_both(empty_db, folder) -> None:
    folder.add("008_billing.sql", "SELECT 1;")
    folder.add("009_leads.sql", "CREATE TABLE leads (id int);")
    folder.add("009_leads_copy.sql", "CREATE TABLE leads (id int);")

    report = _runner(empty_db, folder).apply()

    assert not report.ok
    assert "009_leads.sql, 009_leads_copy.sql" in (report.error or "")
    assert report.applied == []


def test_a_new_file_below_the_latest_applied_is_refused_unless_allowed(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    folder.add("003_c.sql", "CREATE TABLE c (id int);")
    assert _runner(empty_db, folder).apply().ok
    folder.add("002_b.sql", "CREATE TABLE b (id int);")

    refused = _runner(empty_db, folder).apply()
    allowed = _runner(empty_db, folder, allow_out_of_order=True).apply()

    assert not refused.ok
    assert "002_b.sql" in (refused.error or "")
    assert allowed.ok
    assert applied_files(allowed) == ["002_b.sql"]


def test_an_applied_file_gone_from_the_bundle_is_refused_while_newer_exist(
    empty_db, folder
) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    folder.add("002_b.sql", "CREATE TABLE b (id int);")
    assert _runner(empty_db, folder).apply().ok
    folder.remove("002_b.sql")
    folder.add("003_c.sql", "CREATE TABLE c (id int);")

    report = _runner(empty_db, folder).apply()

    assert not report.ok
    assert "002_b.sql" in (report.error or "")
    assert "missing" in (report.error or "")


def test_a_database_ahead_of_the_bundle_succeeds_and_applies_nothing(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    folder.add("002_b.sql", "CREATE TABLE b (id int);")
    assert _runner(empty_db, folder).apply().ok
    # Given old code (a stack rollback) that only carries the first file
    folder.remove("002_b.sql")

    report = _runner(empty_db, folder).apply()

    assert report.ok
    assert report.applied == []
    assert report.ahead == ["002_b.sql"]
    assert report.notes


def test_a_failing_file_rolls_back_alone_and_leaves_the_ledger_consistent(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    broken = folder.add(
        "002_b.sql", "CREATE TABLE b (id int);\n\nINSERT INTO b VALUES ('not a number');\n"
    )
    folder.add("003_c.sql", "CREATE TABLE c (id int);")

    report = _runner(empty_db, folder).apply()

    assert not report.ok
    assert report.failed_file == "002_b.sql"
    assert "002_b.sql (line 3)" in (report.error or "")
    assert "22P02" in (report.error or "")
    assert applied_files(report) == ["001_a.sql"]
    assert _ledger(empty_db) == [(1, "001_a.sql", True), (2, "002_b.sql", False)]
    assert _table_exists(empty_db, "public.a")
    assert not _table_exists(empty_db, "public.b"), "the failing file's own work is undone"
    assert not _table_exists(empty_db, "public.c"), "nothing after the failure runs"
    # When the file is fixed, the next run applies it and what follows
    broken.write_text("CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\n")
    retry = _runner(empty_db, folder).apply()
    assert retry.ok
    assert applied_files(retry) == ["002_b.sql", "003_c.sql"]
    assert all(success for _, _, success in _ledger(empty_db))


def test_concurrent_runners_apply_each_file_exactly_once(empty_db, folder) -> None:
    folder.add("001_slow.sql", "SELECT pg_sleep(0.4); CREATE TABLE a (id int);")
    folder.add("002_b.sql", "CREATE TABLE b (id int);")
    start = threading.Barrier(2)
    reports = []

    def run() -> None:
        start.wait()
        reports.append(_runner(empty_db, folder, lock_wait_s=10).apply())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert all(report.ok for report in reports), [r.error for r in reports]
    applied = sorted(file for report in reports for file in applied_files(report))
    assert applied == ["001_slow.sql", "002_b.sql"]
    assert [len(applied_files(r)) for r in reports].count(0) == 1
    assert [v for v, _, _ in _ledger(empty_db)] == [1, 2]


def test_a_held_lock_fails_after_the_bounded_wait_naming_the_holder(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    runner = _runner(empty_db, folder, lock_wait_s=0.5)
    with psycopg.connect(
        empty_db.owner_url, autocommit=True, application_name="operator-console"
    ) as holder:
        holder.execute("SELECT pg_advisory_lock(7245366016713104213)")
        pid = holder.info.backend_pid
        started = time.monotonic()

        report = runner.apply()

    assert not report.ok
    assert f"pid {pid}" in (report.error or "")
    assert "operator-console" in (report.error or "")
    assert "since" in (report.error or "")
    assert time.monotonic() - started < 5
    assert not _table_exists(empty_db, "public.a")


def test_a_no_transaction_file_builds_an_index_concurrently(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int, email text);")
    folder.add(
        "002_a_index.sql",
        "-- migrate: no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_email_idx ON a (email);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_id_idx ON a (id);\n",
    )

    report = _runner(empty_db, folder).apply()

    assert report.ok, report.error
    with empty_db.owner() as conn:
        rows = conn.execute(
            """
            SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE c.relname IN ('a_email_idx', 'a_id_idx') ORDER BY 1
            """
        ).fetchall()
    assert [(r["relname"], r["indisvalid"]) for r in rows] == [
        ("a_email_idx", True),
        ("a_id_idx", True),
    ]


def test_a_failed_no_transaction_file_reports_the_invalid_index_it_left(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (email text);\nINSERT INTO a VALUES ('x'), ('x');")
    folder.add(
        "002_unique.sql",
        "-- migrate: no-transaction\n"
        "SELECT 1;\n"
        "CREATE UNIQUE INDEX CONCURRENTLY a_email_key ON a (email);\n",
    )

    report = _runner(empty_db, folder).apply()

    assert not report.ok
    assert report.failed_file == "002_unique.sql"
    assert "002_unique.sql (line 3)" in (report.error or "")
    assert report.invalid_indexes == ["public.a_email_key"]
    assert "INVALID" in (report.error or "")
    assert _ledger(empty_db)[-1] == (2, "002_unique.sql", False)


def test_a_legacy_ledger_is_adopted_as_a_baseline(empty_db, folder) -> None:
    # Given the old hand-run process: its own ledger shape, and its schema already in place
    with empty_db.owner() as conn:
        conn.execute(
            """
            CREATE TABLE public.migrations (
                id serial PRIMARY KEY,
                filename varchar(255) NOT NULL,
                executed_at timestamp DEFAULT now()
            );
            INSERT INTO public.migrations (filename, executed_at)
            VALUES ('001_a.sql', '2024-01-02 03:04:05'), ('002_b.sql', '2024-02-03 04:05:06');
            CREATE TABLE a (id int);
            CREATE TABLE b (id int);
            """
        )
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    folder.add("002_b.sql", "CREATE TABLE b (id int);")
    folder.add("003_c.sql", "CREATE TABLE c (id int);")

    report = _runner(empty_db, folder).apply()

    assert report.ok, report.error
    assert report.adopted_legacy is not None
    assert report.adopted_legacy["baseline_version"] == 2
    assert applied_files(report) == ["003_c.sql"]
    assert _ledger(empty_db) == [
        (1, "001_a.sql", True),
        (2, "002_b.sql", True),
        (3, "003_c.sql", True),
    ]
    assert _table_exists(empty_db, "public.migrations_legacy")
    with empty_db.owner() as conn:
        by = conn.execute(
            """
            SELECT applied_by, applied_at::date::text AS day
            FROM public.migrations WHERE version = 1
            """
        ).fetchone()
    assert by == {"applied_by": "legacy", "day": "2024-01-02"}


def test_baseline_records_files_without_running_them(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    folder.add("002_b.sql", "CREATE TABLE b (id int);")
    folder.add("003_c.sql", "CREATE TABLE c (id int);")
    runner = _runner(empty_db, folder)

    baselined = runner.baseline(2)
    again = runner.baseline(2)
    applied = runner.apply()

    assert baselined.ok
    assert applied_files(baselined) == ["001_a.sql", "002_b.sql"]
    assert not _table_exists(empty_db, "public.a")
    assert not again.ok
    assert "already records 2 versions" in (again.error or "")
    assert applied_files(applied) == ["003_c.sql"]


def test_status_and_plan_are_read_only(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    folder.add("002_b.sql", "CREATE TABLE b (id int);")
    runner = _runner(empty_db, folder)

    plan = runner.plan()
    status = runner.status()

    assert plan.ok
    assert status.ok
    assert plan.pending == ["001_a.sql", "002_b.sql"]
    assert status.ledger == []
    assert not _table_exists(empty_db, "public.migrations")
    assert runner.apply().ok
    status = runner.status()
    assert status.pending == []
    assert [entry["name"] for entry in status.ledger] == ["001_a.sql", "002_b.sql"]


def test_status_reports_drift(empty_db, folder) -> None:
    path = folder.add("001_a.sql", "CREATE TABLE a (id int);")
    assert _runner(empty_db, folder).apply().ok
    path.write_text("CREATE TABLE a (id int); -- edited")

    status = _runner(empty_db, folder).status()

    assert not status.ok
    assert status.drift
    assert "001_a.sql" in status.drift[0]


def test_the_connection_is_retried_with_fresh_credentials(empty_db, pg_server, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    dead = psycopg.conninfo.make_conninfo(empty_db.owner_url, port=free_port())
    calls: list[bool] = []

    def conninfo(force: bool) -> str:
        calls.append(force)
        return dead if len(calls) < 3 else empty_db.owner_url

    naps: list[float] = []
    runner = MigrationRunner(
        conninfo, directory=folder.path, sleep=naps.append, options=RunnerOptions()
    )

    report = runner.apply()

    assert report.ok, report.error
    assert calls[:3] == [False, True, True]
    assert naps[:2] == [0.5, 1.0]


def test_an_unreachable_database_fails_after_the_retry_budget(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE TABLE a (id int);")
    dead = psycopg.conninfo.make_conninfo(empty_db.owner_url, port=free_port())
    runner = MigrationRunner(
        dead,
        directory=folder.path,
        options=RunnerOptions(connect_retry_s=0.6),
        sleep=lambda _s: None,
    )

    report = runner.apply()

    assert not report.ok
    assert "could not connect" in (report.error or "")


def test_statements_time_out_before_the_invocation_does(empty_db, folder) -> None:
    folder.add("001_slow.sql", "SELECT pg_sleep(10);")
    margin = 15.0
    runner = MigrationRunner(
        empty_db.owner_url,
        directory=folder.path,
        options=RunnerOptions(time_margin_s=margin),
        deadline=time.monotonic() + margin + 1.5,
    )
    started = time.monotonic()

    report = runner.apply()

    assert not report.ok
    assert "001_slow.sql" in (report.error or "")
    assert "57014" in (report.error or ""), "statement_timeout (query_canceled)"
    assert time.monotonic() - started < 4


def test_the_runtime_role_is_created_with_data_access_only(empty_db, folder) -> None:
    folder.add("001_a.sql", "CREATE SCHEMA app; CREATE TABLE app.t (id int);")
    role = RuntimeRole(f"rt_{empty_db.name}", "s3cret-for-test")
    runner = MigrationRunner(empty_db.owner_url, directory=folder.path, runtime_role=role)

    assert runner.apply().ok
    folder.add("002_b.sql", "CREATE TABLE app.later (id int);")
    assert runner.apply().ok

    url = psycopg.conninfo.make_conninfo(
        empty_db.owner_url, user=role.name, password="s3cret-for-test"
    )
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO app.t VALUES (1)")
            conn.execute("INSERT INTO app.later VALUES (1)")
            assert conn.execute("SELECT count(*) FROM public.migrations").fetchone() == (2,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM public.migrations")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE app.mine (id int)")
    finally:
        with empty_db.owner() as conn:
            conn.execute(f'DROP OWNED BY "{role.name}"')
            conn.execute(f'DROP ROLE "{role.name}"')
