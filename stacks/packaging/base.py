"""What every build step shares: where builds are cached, how they are keyed and serialised,
and how tools are run."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
BUILD_DIR: Final = REPO_ROOT / ".local" / "build"
# Where Lambda mounts a function's code and its layers.
TASK_ROOT: Final = "/var/task"
LAYER_ROOT: Final = "/opt"


class BundlingError(RuntimeError):
    """A layer or the code asset could not be built."""


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    local = REPO_ROOT / ".local" / "tools" / "bin" / "uv"
    if found:
        return found
    if local.exists():
        return str(local)
    raise BundlingError("uv not found: run `make sync`")


def run(args: list[str]) -> str:
    """Run a build tool in the repository; its output, or BundlingError with its tail."""
    # The arguments are this package's constants and paths, never user input.
    result = subprocess.run(  # noqa: S603
        args, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        command = " ".join(arg if "\n" not in arg else "<program>" for arg in args[:4])
        output = (result.stdout + result.stderr).strip()
        raise BundlingError(f"{command} ... failed:\n{output[-4000:]}")
    return result.stdout


def digest(*parts: bytes) -> str:
    """SHA-256 over length-prefixed parts (no two part lists hash alike)."""
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(len(part).to_bytes(8, "big"))
        hashed.update(part)
    return hashed.hexdigest()


@contextmanager
def build_lock(name: str) -> Iterator[None]:
    """Serialise builds of one artifact across processes (pytest-xdist workers, parallel synths)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with (BUILD_DIR / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
