"""Write docs/schema.md: one mermaid ER diagram per schema, read from the catalog of a database
migrated by the migration runner (or check that the file is current).

Without --database-url it starts a throwaway embedded PostgreSQL (under .local/, removed at
the end), applies database/migrations with the runner, and reads that.

Examples:
  uv run python scripts/schema_diagram.py            # rewrite docs/schema.md (make schema-docs)
  uv run python scripts/schema_diagram.py --check    # exit 1 if it is stale
  uv run python scripts/schema_diagram.py --database-url postgresql://...  # a migrated database
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from lambdas.migrations.runner import MigrationRunner  # noqa: E402
from scripts.devstack.postgres import EmbeddedPostgres, free_port  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "schema.md"
REGENERATE = "make schema-docs"

# Our schemas: everything but PostgreSQL's own.
_COLUMNS = """
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column,
       CASE WHEN t.typcategory = 'A' THEN e.typname || '[]' ELSE t.typname END AS type,
       NOT a.attnotnull AS nullable,
       c.relrowsecurity AS rls
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type AS t ON t.oid = a.atttypid
LEFT JOIN pg_type AS e ON e.oid = t.typelem
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
ORDER BY n.nspname, c.relname, a.attnum
"""

# Primary keys, single-column unique constraints and foreign keys, one row per constraint.
_CONSTRAINTS = """
SELECT n.nspname AS schema, c.relname AS table, k.conname AS name, k.contype AS kind,
       array(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS u(num, pos)
             JOIN pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = u.num
             ORDER BY u.pos)::text[] AS columns,
       fn.nspname AS ref_schema, fc.relname AS ref_table
FROM pg_constraint AS k
JOIN pg_class AS c ON c.oid = k.conrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_class AS fc ON fc.oid = k.confrelid
LEFT JOIN pg_namespace AS fn ON fn.oid = fc.relnamespace
WHERE k.contype IN ('p', 'u', 'f') AND NOT c.relispartition
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
ORDER BY n.nspname, c.relname, k.conname
"""


@dataclass
class Column:
    name: str
    type: str
    nullable: bool
    keys: set[str] = field(default_factory=set)


@dataclass
class Table:
    schema: str
    name: str
    rls: bool
    columns: dict[str, Column] = field(default_factory=dict)


@dataclass(frozen=True)
class ForeignKey:
    table: Table
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str

    @property
    def optional(self) -> bool:
        return any(self.table.columns[c].nullable for c in self.columns)


@dataclass
class Catalog:
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    unique: set[tuple[str, str, tuple[str, ...]]] = field(default_factory=set)

    def schemas(self) -> list[str]:
        return sorted({schema for schema, _ in self.tables})


def read_catalog(conn: psycopg.Connection[Any]) -> Catalog:
    """Tables, columns, keys and foreign keys of every non-system schema."""
    catalog = Catalog()
    for schema, table, column, type_, nullable, rls in conn.execute(_COLUMNS):
        entry = catalog.tables.setdefault((schema, table), Table(schema, table, rls))
        entry.columns[column] = Column(column, type_, nullable)
    for schema, table, _name, kind, columns, ref_schema, ref_table in conn.execute(_CONSTRAINTS):
        owner = catalog.tables[(schema, table)]
        if kind == "f":
            catalog.foreign_keys.append(ForeignKey(owner, tuple(columns), ref_schema, ref_table))
            marker = "FK"
        else:
            catalog.unique.add((schema, table, tuple(columns)))
            marker = "PK" if kind == "p" else "UK"
            if kind == "u" and len(columns) > 1:
                continue  # a composite unique key has no single column to mark
        for column in columns:
            owner.columns[column].keys.add(marker)
    return catalog


def _entity(schema: str, table: str, home: str) -> str:
    # Always quoted: mermaid's lexer would read an unquoted name starting with a keyword
    # ("to", "one", "end"...) as that keyword. Other schemas' tables keep their schema.
    return f'"{table}"' if schema == home else f'"{schema}.{table}"'


def _attribute(column: Column) -> str:
    keys = ", ".join(k for k in ("PK", "FK", "UK") if k in column.keys)
    parts = [column.type.replace(" ", "_"), column.name]
    if keys:
        parts.append(keys)
    if column.nullable:
        parts.append('"nullable"')
    return " ".join(parts)


def _relationship(catalog: Catalog, fk: ForeignKey, home: str) -> str:
    parent = "|o" if fk.optional else "||"
    one_to_one = (fk.table.schema, fk.table.name, fk.columns) in catalog.unique
    child = "o|" if one_to_one else "o{"
    label = ", ".join(fk.columns)
    return (
        f"    {_entity(fk.ref_schema, fk.ref_table, home)} {parent}--{child} "
        f'{_entity(fk.table.schema, fk.table.name, home)} : "{label}"'
    )


def render_schema(catalog: Catalog, schema: str) -> str:
    tables = [t for (s, _), t in sorted(catalog.tables.items()) if s == schema]
    foreign = [fk for fk in catalog.foreign_keys if fk.table.schema == schema]
    lines = [f"## {schema}", ""]
    rls = [t.name for t in tables if t.rls]
    lines.append(f"{len(tables)} tables; row-level security on: {', '.join(rls) or 'none'}.")
    elsewhere = sorted(
        {f"{fk.ref_schema}.{fk.ref_table}" for fk in foreign}
        - {f"{schema}.{t.name}" for t in tables}
    )
    if elsewhere:
        lines.append(f"Tables of other schemas, shown without columns: {', '.join(elsewhere)}.")
    lines += ["", "```mermaid", "erDiagram"]
    for table in tables:
        lines.append(f"    {_entity(schema, table.name, schema)} {{")
        lines += [f"        {_attribute(c)}" for c in table.columns.values()]
        lines.append("    }")
    for fk in sorted(foreign, key=lambda f: (f.table.name, f.columns, f.ref_schema, f.ref_table)):
        lines.append(_relationship(catalog, fk, schema))
    lines += ["```", ""]
    return "\n".join(lines)


def render(catalog: Catalog) -> str:
    """The whole of docs/schema.md."""
    by_schema: dict[str, int] = defaultdict(int)
    for schema, _ in catalog.tables:
        by_schema[schema] += 1
    header = [
        "# Database schema",
        "",
        f"Generated from the catalog of a database migrated by the runner; do not edit: run "
        f"`{REGENERATE}`",
        "(`scripts/schema_diagram.py`). A test fails when this file is stale.",
        "",
        "Keys: PK primary, FK foreign, UK unique (single column). A relationship is labelled",
        'with its foreign-key columns; `|o` marks an optional (nullable) one. `"nullable"`',
        "marks a column without NOT NULL.",
        "",
        *(f"- [{s}](#{s}): {by_schema[s]} tables" for s in catalog.schemas()),
        "",
    ]
    return "\n".join(header + [render_schema(catalog, s) for s in catalog.schemas()])


@contextmanager
def migrated_database() -> Iterator[str]:
    """A throwaway embedded PostgreSQL with database/migrations applied; yields its URL."""
    scratch_root = ROOT / ".local"
    scratch_root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_root, prefix="schema-docs-") as scratch:
        server = EmbeddedPostgres(Path(scratch), port=free_port(), ephemeral=True)
        server.start()
        try:
            url = server.connection.url("postgres")
            report = MigrationRunner(url).apply()
            if not report.ok:
                raise RuntimeError(f"migrations failed: {report.error}")
            yield url
        finally:
            server.destroy()


def generate(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        return render(read_catalog(conn))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the file is not current")
    parser.add_argument("--database-url", help="read this migrated database instead")
    args = parser.parse_args(argv)
    if args.database_url:
        content = generate(args.database_url)
    else:
        with migrated_database() as url:
            content = generate(url)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != content:
            print(f"{args.output} is stale: run `{REGENERATE}` and commit it", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(content)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
