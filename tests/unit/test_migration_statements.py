from __future__ import annotations

from lambdas.migrations.statements import is_no_transaction, split_statements


def _texts(sql: str) -> list[str]:
    return [statement.text for statement in split_statements(sql)]


def test_statements_are_split_on_top_level_semicolons() -> None:
    sql = "CREATE TABLE a (id int);\nCREATE INDEX CONCURRENTLY a_idx ON a (id);\n"

    assert _texts(sql) == ["CREATE TABLE a (id int)", "CREATE INDEX CONCURRENTLY a_idx ON a (id)"]


def test_semicolons_inside_strings_identifiers_and_comments_do_not_split() -> None:
    sql = """
    INSERT INTO t VALUES ('a;b', 'it''s; fine', E'x\\';y');
    SELECT 1 AS "odd;name"; -- trailing; comment
    /* block; /* nested; */ still; */ SELECT 2;
    """

    assert _texts(sql) == [
        "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'x\\';y')",
        'SELECT 1 AS "odd;name"',
        "-- trailing; comment\n    /* block; /* nested; */ still; */ SELECT 2",
    ]


def test_dollar_quoted_bodies_stay_whole() -> None:
    sql = """CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
    BEGIN PERFORM 1; RETURN 2; END $body$;
    DO $$ BEGIN PERFORM 1; END $$;"""

    statements = _texts(sql)

    assert len(statements) == 2
    assert statements[0].endswith("END $body$")
    assert statements[1] == "DO $$ BEGIN PERFORM 1; END $$"


def test_comment_only_chunks_are_dropped_and_lines_are_reported() -> None:
    sql = "-- migrate: no-transaction\n-- a note;\n\nSELECT 1;\n-- the end\n"

    [statement] = split_statements(sql)

    assert statement.text.endswith("SELECT 1")
    assert statement.line == 1


def test_only_a_first_line_directive_opts_out_of_the_transaction() -> None:
    assert is_no_transaction("-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);")
    assert is_no_transaction("-- Migrate: No-Transaction\r\nSELECT 1;".replace("\r", ""))
    assert not is_no_transaction("SELECT 1;\n-- migrate: no-transaction\n")
    assert not is_no_transaction("-- migrate: no-transactions\nSELECT 1;")
