"""Discovery of the migration files bundled with the code (``database/migrations``).

The deployed asset keeps the repository's layout, so the files sit two levels above this
package both locally and under ``/var/task``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "database" / "migrations"
_FILE_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_]+)\.sql$")


class MigrationFileError(ValueError):
    """A file in the migrations folder breaks the naming rule."""


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    @cached_property
    def sql(self) -> str:
        return normalise(self.path.read_bytes())

    @cached_property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def normalise(content: bytes) -> str:
    """File content as the checksum sees it: BOM removed, CRLF folded to LF."""
    text = content.decode("utf-8-sig")
    return text.replace("\r\n", "\n")


def discover(directory: Path = MIGRATIONS_DIR) -> list[MigrationFile]:
    """Every ``NNN_description.sql`` in ``directory``, sorted by version then file name."""
    files = []
    for path in directory.glob("*.sql"):
        found = _FILE_NAME.match(path.name)
        if not found:
            raise MigrationFileError(f"{path.name}: expected NNN_description.sql")
        files.append(MigrationFile(int(found["version"]), found["name"], path))
    return sorted(files, key=lambda f: (f.version, f.filename))
