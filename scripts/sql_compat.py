"""Check that SQL files are PostgreSQL 17 SQL, the version production runs.

Production is Aurora PostgreSQL 17; the tests and ``make dev`` run an embedded PostgreSQL 18,
which accepts syntax and functions that 17 refuses. A migration written against 18 passes every
test here and fails in ``cdk deploy``. This check closes that gap without a second server:

- every statement must parse with PostgreSQL 17's own grammar (libpg_query 17, through pglast 7),
  and so must every PL/pgSQL body (functions, procedures, ``DO`` blocks), every statement inside
  one, and the body of every SQL-language function;
- no statement may call a built-in function that PostgreSQL 18 added (``uuidv7()``,
  ``casefold()``, ...), which 17's grammar parses but 17's catalog does not have;
- no ``RETURNING`` may read ``old.``/``new.`` of a plain statement (PostgreSQL 18's
  ``RETURNING OLD/NEW``), which 17 parses as a reference to a relation that is not there.

Usage: ``uv run python scripts/sql_compat.py [FILE.sql ...]`` (default: every migration in
``database/migrations``). Exit status 1 and one line per problem when a file is not PostgreSQL 17.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pglast import ast, parse_plpgsql, parse_sql
from pglast.parser import ParseError, split
from pglast.visitors import Visitor

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS_DIR = ROOT / "database" / "migrations"

# Built-in functions added in PostgreSQL 18 (release notes of 18.0, "Functions"): 17 parses a
# call to them and fails only when it runs.
PG18_FUNCTIONS = frozenset(
    {
        "array_reverse",
        "array_sort",
        "casefold",
        "crc32",
        "crc32c",
        "gamma",
        "has_largeobject_privilege",
        "lgamma",
        "pg_clear_attribute_stats",
        "pg_clear_relation_stats",
        "pg_get_loaded_modules",
        "pg_ls_summariesdir",
        "pg_numa_available",
        "pg_restore_attribute_stats",
        "pg_restore_relation_stats",
        "pg_stat_get_backend_io",
        "pg_stat_get_backend_wal",
        "pg_stat_reset_backend_stats",
        "uuid_extract_timestamp_v7",
        "uuidv4",
        "uuidv7",
    }
)

# PL/pgSQL expression parse modes (libpg_query's RawParseMode): 0 is a whole statement, 2 an
# expression, 3-5 an assignment ``target := expression``.
_STATEMENT_MODE = 0
_EXPRESSION_MODE = 2
_ASSIGNMENT = re.compile(r"^\s*[^:]+?:=\s*", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    file: str
    statement: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: statement {self.statement}: {self.reason}"


@dataclass(frozen=True)
class Report:
    problems: list[Problem]
    statements: int  # top-level statements parsed
    bodies: int  # PL/pgSQL and SQL function bodies, and DO blocks, parsed on their own


class _Calls(Visitor):
    """Collects the PostgreSQL 18 functions a tree calls and its RETURNING old./new. reads."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def visit_FuncCall(self, _ancestors: Any, node: ast.FuncCall) -> None:  # noqa: N802
        names = [name.sval for name in node.funcname]
        schema_ok = len(names) == 1 or names[0] == "pg_catalog"
        if schema_ok and names[-1].lower() in PG18_FUNCTIONS:
            self.found.append(f"calls {names[-1]}(), a function PostgreSQL 18 added")

    def _returning(self, node: Any) -> None:
        aliases = _relation_names(node)
        for target in node.returningList or ():
            for ref in _column_refs(target):
                first = ref.fields[0]
                name = getattr(first, "sval", None)
                if len(ref.fields) > 1 and name in {"old", "new"} and name not in aliases:
                    self.found.append(
                        f"RETURNING reads {name}.…, PostgreSQL 18's RETURNING OLD/NEW"
                    )

    def visit_InsertStmt(self, _ancestors: Any, node: ast.InsertStmt) -> None:  # noqa: N802
        self._returning(node)

    def visit_UpdateStmt(self, _ancestors: Any, node: ast.UpdateStmt) -> None:  # noqa: N802
        self._returning(node)

    def visit_DeleteStmt(self, _ancestors: Any, node: ast.DeleteStmt) -> None:  # noqa: N802
        self._returning(node)

    def visit_MergeStmt(self, _ancestors: Any, node: ast.MergeStmt) -> None:  # noqa: N802
        self._returning(node)


def _relation_names(node: Any) -> set[str]:
    names: set[str] = set()
    relation = node.relation
    names.add(relation.relname)
    if relation.alias is not None:
        names.add(relation.alias.aliasname)
    for item in getattr(node, "fromClause", None) or getattr(node, "usingClause", None) or ():
        if isinstance(item, ast.RangeVar):
            names.add(item.alias.aliasname if item.alias else item.relname)
    return names


def _column_refs(node: Any) -> Iterator[ast.ColumnRef]:
    if isinstance(node, ast.ColumnRef):
        yield node
        return
    if isinstance(node, ast.Node):
        for value in node:
            yield from _column_refs(getattr(node, value))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _column_refs(item)


def _option(options: Any, name: str) -> Any:
    for option in options or ():
        if option.defname == name:
            return option.arg
    return None


def _plpgsql_queries(tree: Any) -> Iterator[tuple[int, str]]:
    """Every SQL text of a parsed PL/pgSQL function, with its parse mode."""
    if isinstance(tree, dict):
        expr = tree.get("PLpgSQL_expr")
        if isinstance(expr, dict) and isinstance(expr.get("query"), str):
            yield int(expr.get("parseMode", _STATEMENT_MODE)), expr["query"]
        for value in tree.values():
            yield from _plpgsql_queries(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _plpgsql_queries(item)


def _as_statement(mode: int, query: str) -> str:
    if mode == _STATEMENT_MODE:
        return query
    if mode == _EXPRESSION_MODE:
        return f"SELECT {query}"
    return f"SELECT {_ASSIGNMENT.sub('', query, count=1)}"


def _wrapped_do(body: str) -> str:
    tag = "pg17_check"
    while f"${tag}$" in body:
        tag += "_"
    return f"CREATE FUNCTION pg17_check() RETURNS void LANGUAGE plpgsql AS ${tag}${body}${tag}$"


class _File:
    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[Problem] = []
        self.bodies = 0

    def problem(self, statement: int, reason: str) -> None:
        self.problems.append(Problem(self.name, statement, reason))

    def walk(self, statement: int, tree: Any) -> None:
        calls = _Calls()
        calls(tree)
        for reason in calls.found:
            self.problem(statement, reason)

    def sql(self, statement: int, text: str, where: str) -> None:
        try:
            parsed = parse_sql(text)
        except ParseError as error:
            self.problem(statement, f"{where} is not PostgreSQL 17 syntax: {error}")
            return
        for raw in parsed:
            self.walk(statement, raw.stmt)
            self.parse_bodies(statement, raw.stmt, text, raw)

    def plpgsql(self, statement: int, source: str) -> None:
        self.bodies += 1
        try:
            functions = parse_plpgsql(source)
        except ParseError as error:
            self.problem(statement, f"a PL/pgSQL body is not PostgreSQL 17 syntax: {error}")
            return
        for mode, query in _plpgsql_queries(functions):
            self.sql(statement, _as_statement(mode, query), "a statement in a PL/pgSQL body")

    def parse_bodies(self, statement: int, node: Any, text: str, raw: ast.RawStmt) -> None:
        """Parse what the grammar keeps as strings: function bodies and DO blocks."""
        if isinstance(node, ast.CreateFunctionStmt):
            language = _option(node.options, "language")
            body = _option(node.options, "as")
            language_name = getattr(language, "sval", "sql").lower()
            if body is None:  # BEGIN ATOMIC: already parsed as statements, and walked
                return
            if language_name == "plpgsql":
                start = raw.stmt_location or 0
                end = start + raw.stmt_len if raw.stmt_len else len(text)
                self.plpgsql(statement, text[start:end])
            elif language_name == "sql":
                self.bodies += 1
                self.sql(statement, body[0].sval, "an SQL function's body")
        elif isinstance(node, ast.DoStmt):
            language = _option(node.args, "language")
            if getattr(language, "sval", "plpgsql").lower() == "plpgsql":
                self.plpgsql(statement, _wrapped_do(_option(node.args, "as").sval))


def _failing_statement(text: str, error: ParseError) -> int:
    """The number of the statement a syntax error is in (the scanner splits what the grammar
    refused; the error names the character where it stopped)."""
    where = error.args[1] if len(error.args) > 1 else 0
    slices = [
        part for part in split(text, with_parser=False, only_slices=True) if isinstance(part, slice)
    ]
    for number, part in enumerate(slices, start=1):
        if part.start <= where < part.stop + 1:
            return number
    return len(slices)


def check_text(name: str, text: str) -> Report:
    """What keeps ``text`` (one SQL file) from running on PostgreSQL 17, and how much of it
    was parsed."""
    checked = _File(name)
    try:
        statements = parse_sql(text)
    except ParseError as error:
        checked.problem(_failing_statement(text, error), f"not PostgreSQL 17 syntax: {error}")
        return Report(checked.problems, 0, 0)
    for number, raw in enumerate(statements, start=1):
        checked.walk(number, raw.stmt)
        checked.parse_bodies(number, raw.stmt, text, raw)
    return Report(checked.problems, len(statements), checked.bodies)


def check_files(paths: list[Path]) -> Report:
    reports = [check_text(path.name, path.read_text(encoding="utf-8")) for path in paths]
    return Report(
        [problem for report in reports for problem in report.problems],
        sum(report.statements for report in reports),
        sum(report.bodies for report in reports),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Check that SQL files are PostgreSQL 17 SQL (production's Aurora version): 17's "
            "grammar for statements and PL/pgSQL bodies, no function PostgreSQL 18 added, no "
            "RETURNING OLD/NEW."
        )
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="SQL files to check (default: every file in database/migrations)",
    )
    args = parser.parse_args(argv)
    paths = args.files or sorted(MIGRATIONS_DIR.glob("*.sql"))
    report = check_files(paths)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(
        f"{len(paths)} files, {report.statements} statements and {report.bodies} function "
        f"bodies parsed as PostgreSQL 17: {len(report.problems)} problems"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
