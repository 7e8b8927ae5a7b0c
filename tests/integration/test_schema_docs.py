"""docs/schema.md: the ER diagrams drawn from the migrated catalog, and kept current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.devstack.postgres import ConnectionInfo
from scripts.schema_diagram import DEFAULT_OUTPUT, generate, main
from tests.support.database import TEMPLATE_DB, TestDatabase

RELATIONSHIP = re.compile(r'^    "([^"]+)" (\|\||\|o)--(o\{|o\|) "([^"]+)" : "([^"]+)"$', re.M)


def test_docs_schema_md_is_current(template_db: ConnectionInfo) -> None:
    current = generate(template_db.url(TEMPLATE_DB))

    assert DEFAULT_OUTPUT.read_text() == current, (
        "docs/schema.md is stale: run `make schema-docs` and commit it"
    )


def test_every_table_and_foreign_key_is_drawn(db: TestDatabase) -> None:
    with db.owner() as conn:
        tables = conn.execute(
            """
            SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
            WHERE table_type = 'BASE TABLE'
              AND table_schema NOT IN ('pg_catalog', 'information_schema')
            """
        ).fetchall()
        counted = conn.execute(
            "SELECT count(*) AS n FROM information_schema.referential_constraints"
        ).fetchone()
    assert counted is not None

    document = generate(db.owner_url)

    assert tables
    for table in tables:
        assert f'    "{table["name"]}" {{' in document, table
    assert len(RELATIONSHIP.findall(document)) == counted["n"]


def test_a_new_table_appears_with_its_keys_and_relationships(db: TestDatabase) -> None:
    # Given a table whose name starts with a mermaid keyword ("to"), an optional reference to
    # users, a mandatory one to tenants and a one-to-one key
    with db.owner() as conn:
        conn.execute(
            """
            CREATE TABLE alquimista_platform.token_quotas (
                id uuid PRIMARY KEY,
                tenant_id uuid NOT NULL UNIQUE
                    REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
                granted_by uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
                monthly_tokens bigint NOT NULL,
                tags text[]
            )
            """
        )

    document = generate(db.owner_url)

    assert (
        '    "token_quotas" {\n'
        "        uuid id PK\n"
        "        uuid tenant_id FK, UK\n"
        '        uuid granted_by FK "nullable"\n'
        "        int8 monthly_tokens\n"
        '        text[] tags "nullable"\n'
        "    }\n"
    ) in document
    relationships = set(RELATIONSHIP.findall(document))
    assert ("tenants", "||", "o|", "token_quotas", "tenant_id") in relationships
    assert ("users", "|o", "o{", "token_quotas", "granted_by") in relationships


def test_check_fails_on_a_stale_file_and_says_how_to_fix_it(
    db: TestDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "schema.md"
    stale.write_text("# an old schema\n")
    arguments = ["--output", str(stale), "--database-url", db.owner_url]

    assert main([*arguments, "--check"]) == 1
    assert "run `make schema-docs`" in capsys.readouterr().err

    assert main(arguments) == 0
    assert main([*arguments, "--check"]) == 0
