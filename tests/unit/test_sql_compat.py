"""Migrations are PostgreSQL 17 SQL: production runs Aurora PostgreSQL 17, the tests an
embedded PostgreSQL 18 that accepts more (scripts/sql_compat.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import sql_compat


def test_every_migration_is_postgresql_17_sql() -> None:
    paths = sorted(sql_compat.MIGRATIONS_DIR.glob("*.sql"))
    report = sql_compat.check_files(paths)

    assert [str(problem) for problem in report.problems] == []
    # The check reached the function bodies, where most of the SQL lives, not only the DDL.
    assert len(paths) >= 30
    assert report.bodies >= 60


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT uuidv7();", "calls uuidv7()"),
        (
            "CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a * 2) VIRTUAL);",
            "not PostgreSQL 17 syntax",
        ),
        (
            "CREATE FUNCTION f() RETURNS uuid LANGUAGE plpgsql AS $$"
            " DECLARE u uuid; BEGIN u := pg_catalog.uuidv7(); RETURN u; END $$;",
            "calls uuidv7()",
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ DECLARE x int;"
            " BEGIN UPDATE t SET a = 1 RETURNING WITH (OLD AS o) o.a INTO x; RETURN x; END $$;",
            "a PL/pgSQL body is not PostgreSQL 17 syntax",
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ DECLARE x int;"
            " BEGIN UPDATE t SET a = 1 WHERE id = 2 RETURNING old.a INTO x; RETURN x; END $$;",
            "RETURNING reads old.",
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ DELETE FROM t RETURNING new.a $$;",
            "RETURNING reads new.",
        ),
        (
            "CREATE FUNCTION f(t text) RETURNS text LANGUAGE sql BEGIN ATOMIC"
            " SELECT casefold(t); END;",
            "calls casefold()",
        ),
        ("DO $$ BEGIN PERFORM crc32c('x'::bytea); END $$;", "calls crc32c()"),
        ("DO $$ BEGIN IF uuidv7() IS NULL THEN RETURN; END IF; END $$;", "calls uuidv7()"),
    ],
    ids=[
        "call",
        "virtual-column",
        "plpgsql-assignment",
        "plpgsql-returning-with",
        "plpgsql-returning-old",
        "sql-body-returning-new",
        "begin-atomic",
        "do-block",
        "plpgsql-condition",
    ],
)
def test_postgresql_18_only_sql_is_refused(sql: str, reason: str) -> None:
    problems = sql_compat.check_text("probe.sql", sql).problems

    assert problems, sql
    assert reason in problems[0].reason
    assert problems[0].statement == 1


@pytest.mark.parametrize(
    "sql",
    [
        # A relation aliased old, and a trigger's OLD/NEW records: PostgreSQL 17 SQL.
        "UPDATE t AS old SET a = 1 RETURNING old.a;",
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " NEW.a := coalesce(NEW.a, 1); IF OLD.a IS DISTINCT FROM NEW.a THEN"
        " INSERT INTO log VALUES (NEW.a); END IF; RETURN NEW; END $$;",
        # A schema's own function of the same name is not the built-in.
        "SELECT app.uuidv7();",
    ],
    ids=["aliased-old", "trigger-records", "schema-function"],
)
def test_postgresql_17_sql_passes(sql: str) -> None:
    assert sql_compat.check_text("probe.sql", sql).problems == []


def test_the_command_names_each_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "001_good.sql"
    good.write_text("CREATE TABLE t (id uuid PRIMARY KEY DEFAULT gen_random_uuid());\n")
    bad = tmp_path / "002_bad.sql"
    bad.write_text("SELECT 1;\nSELECT uuidv7();\n")

    assert sql_compat.main([str(good)]) == 0
    assert sql_compat.main([str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "002_bad.sql: statement 2: calls uuidv7()" in err
    assert "001_good.sql" not in err
