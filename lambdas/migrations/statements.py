"""Splitting a ``-- migrate: no-transaction`` file into the statements run one by one.

PostgreSQL refuses ``CREATE INDEX CONCURRENTLY`` (and a few others) inside a transaction
block, and a multi-statement simple query is one implicit transaction, so such files are
sent statement by statement in autocommit. The splitter understands what can hide a ``;``:
quoted strings and identifiers, dollar quotes, and both kinds of comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NO_TRANSACTION_DIRECTIVE = "-- migrate: no-transaction"
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z_0-9]")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int
    """1-based line of the file where the statement starts."""


def is_no_transaction(sql: str) -> bool:
    """Whether the file opts out of the per-file transaction (its first line is the directive)."""
    first = sql.lstrip("\n").split("\n", 1)[0].strip().lower()
    return first == NO_TRANSACTION_DIRECTIVE


def split_statements(sql: str) -> list[Statement]:
    """The file's statements, without the separating semicolons; comment-only parts dropped."""
    statements: list[Statement] = []
    start = 0
    i = 0
    length = len(sql)
    while i < length:
        char = sql[i]
        if char == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = length if end < 0 else end + 1
        elif char == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif char in ("'", '"'):
            i = _skip_quoted(sql, i, char)
        elif char == "$" and (i == 0 or not _IDENT_CHAR.match(sql[i - 1])):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                end = sql.find(tag.group(), tag.end())
                i = length if end < 0 else end + len(tag.group())
            else:
                i += 1
        elif char == ";":
            _append(statements, sql, start, i)
            start = i = i + 1
        else:
            i += 1
    _append(statements, sql, start, length)
    return statements


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    backslash_escapes = quote == "'" and i > 0 and sql[i - 1] in "eE"
    i += 1
    while i < len(sql):
        if backslash_escapes and sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


def _append(statements: list[Statement], sql: str, start: int, end: int) -> None:
    chunk = sql[start:end]
    if not _has_code(chunk):
        return
    leading = len(chunk) - len(chunk.lstrip())
    line = sql.count("\n", 0, start + leading) + 1
    statements.append(Statement(chunk.strip(), line))


def _has_code(chunk: str) -> bool:
    without_comments = re.sub(r"--[^\n]*", "", chunk)
    without_comments = re.sub(r"/\*.*?\*/", "", without_comments, flags=re.DOTALL)
    return bool(without_comments.strip())
