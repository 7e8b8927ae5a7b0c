"""The functions' code asset: ``lambdas/`` and ``database/migrations/`` with the repository's
layout, because the migration runner and the health route find the SQL files at ``parents[2]``
of ``lambdas/shared/migration_files.py``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

from stacks.packaging import bytecode
from stacks.packaging.base import REPO_ROOT, TASK_ROOT, digest

CODE_SOURCES: Final = ("lambdas", "database/migrations")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")


def code_key() -> str:
    """A hash of every source file and the bytecode recipe: the asset's identity."""
    parts: list[bytes] = [bytecode.bytecode_tag().encode()]
    for source in CODE_SOURCES:
        for path in sorted((REPO_ROOT / source).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                parts += [path.relative_to(REPO_ROOT).as_posix().encode(), path.read_bytes()]
    return digest(*parts)[:20]


def stage_code(output: Path) -> None:
    """Copy the code sources into ``output``, keeping the repository's layout, and compile
    them for the runtime's Python."""
    for source in CODE_SOURCES:
        shutil.copytree(REPO_ROOT / source, output / source, ignore=_IGNORED, dirs_exist_ok=True)
    bytecode.compile_bytecode(output / "lambdas", f"{TASK_ROOT}/lambdas")
