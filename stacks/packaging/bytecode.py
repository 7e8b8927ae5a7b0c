"""The runtime's bytecode, written on this machine.

A function's code and layers are read-only, so without ``.pyc`` files Lambda compiles every
module it imports on each cold start (about three times the import's CPU, docs/benchmarks.md).
The files are ``unchecked-hash`` pycs (valid whatever the zip does to modification times)
whose recorded paths are the ones Lambda mounts. They need a final CPython of the runtime's
version (``LAMBDA_BYTECODE_PYTHON``, ``python3.13`` on ``PATH`` or a pyenv install); without
one the bundles ship sources only, and the build says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Final

from stacks.packaging.base import LAYER_ROOT, TASK_ROOT, BundlingError, digest, run

RUNTIME_PYTHON: Final = "3.13"  # the functions' runtime (stacks.constants.LAMBDA_RUNTIME)

_COMPILE = """
import compileall, py_compile, sys
target, prefix = sys.argv[1], sys.argv[2]
compiled = compileall.compile_dir(
    target, quiet=1, workers=0, stripdir=target, prependdir=prefix,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if compiled else 1)
"""
# release level, major.minor, and the magic number that tags the bytecode it writes
_PROBE = (
    "import importlib.util, sys; "
    "print(sys.version_info.releaselevel, '%d.%d' % sys.version_info[:2], "
    "importlib.util.MAGIC_NUMBER.hex())"
)


def _bytecode_magic(candidate: str) -> str | None:
    """The bytecode magic of ``candidate`` if it is a final CPython of the runtime's minor
    version (a pre-release writes bytecode the runtime ignores)."""
    try:
        probe = subprocess.run(  # noqa: S603 - a path we looked up, a constant program
            [candidate, "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    wanted = ["final", RUNTIME_PYTHON]
    return probe[2] if len(probe) == 3 and probe[:2] == wanted else None


def _version_key(path: Path) -> tuple[int, ...]:
    # pyenv's versions/<3.13.N>/bin/python3.13, newest first by number, not by text
    return tuple(int(part) if part.isdigit() else -1 for part in path.parents[1].name.split("."))


@cache
def bytecode_python() -> tuple[str, str] | None:
    """(path, bytecode magic) of a CPython of the Lambda runtime's version, if there is one."""
    minor = RUNTIME_PYTHON
    chosen = os.environ.get("LAMBDA_BYTECODE_PYTHON")
    if chosen:
        magic = _bytecode_magic(chosen)
        if magic is None:
            raise BundlingError(f"LAMBDA_BYTECODE_PYTHON={chosen} is not a final CPython {minor}")
        return chosen, magic
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    installed = sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"), key=_version_key, reverse=True)
    for candidate in filter(None, [shutil.which(f"python{minor}"), *map(str, installed)]):
        magic = _bytecode_magic(candidate)
        if magic:
            return candidate, magic
    return None


def bytecode_tag() -> str:
    """Part of every asset's recipe: the bytecode format and how it was compiled, if it was."""
    found = bytecode_python()
    if found is None:
        return "bytecode-none"
    recipe = digest(_COMPILE.encode(), TASK_ROOT.encode(), LAYER_ROOT.encode())[:12]
    return f"bytecode-{found[1]}-{recipe}"


def compile_bytecode(directory: Path, mounted_at: str) -> bool:
    """Write ``unchecked-hash`` pycs for the runtime's Python under ``directory``, recording
    paths as ``mounted_at``; False (and nothing written) without such an interpreter. A file
    that does not compile fails the build: it would fail on Lambda too."""
    found = bytecode_python()
    if found is None:
        _warn_no_bytecode()
        return False
    run([found[0], "-I", "-c", _COMPILE, str(directory), mounted_at])
    return True


@cache
def _warn_no_bytecode() -> None:
    minor = RUNTIME_PYTHON
    print(  # noqa: T201 - build output, once per process
        f"warning: no Python {minor} found (set LAMBDA_BYTECODE_PYTHON): the Lambda bundles ship "
        "without bytecode, so every cold start compiles the imported modules",
        file=sys.stderr,
    )
