"""What a run would do, decided from the bundled files and the ledger alone (no I/O).

Every refusal names the file it is about, so a failed deploy says what to fix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class BundledFile(Protocol):
    """What planning needs of a migration file (``MigrationFile`` in the runner)."""

    @property
    def version(self) -> int: ...
    @property
    def filename(self) -> str: ...
    @property
    def checksum(self) -> str: ...


F = TypeVar("F", bound=BundledFile)


@dataclass(frozen=True)
class LedgerEntry:
    """One row of ``public.migrations``; ``name`` is the file name it was applied from."""

    version: int
    name: str
    checksum: str
    success: bool


@dataclass(frozen=True)
class Drift:
    filename: str
    ledger_checksum: str
    file_checksum: str

    def describe(self) -> str:
        return (
            f"{self.filename}: content changed after it was applied "
            f"(ledger checksum {self.ledger_checksum}, file checksum {self.file_checksum})"
        )


@dataclass
class MigrationPlan(Generic[F]):
    pending: list[F] = field(default_factory=list)
    applied: list[LedgerEntry] = field(default_factory=list)
    ahead: list[LedgerEntry] = field(default_factory=list)
    """Applied versions newer than every bundled file (old code re-invoked after a rollback)."""
    drift: list[Drift] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def plan_migrations(
    files: Sequence[F],
    ledger: Iterable[LedgerEntry],
    *,
    allow_out_of_order: bool = False,
) -> MigrationPlan[F]:
    """Compare the bundle with the ledger: what is pending, what is ahead, what is refused."""
    plan: MigrationPlan[F] = MigrationPlan()
    by_version: dict[int, list[F]] = defaultdict(list)
    for migration in files:
        by_version[migration.version].append(migration)
    for version, same in sorted(by_version.items()):
        if len(same) > 1:
            names = ", ".join(m.filename for m in same)
            plan.refusals.append(f"{names}: {len(same)} files share version {version}")

    done = {entry.version: entry for entry in ledger if entry.success}
    latest_applied = max(done, default=None)
    newest_file = max(by_version, default=None)

    for version, entry in sorted(done.items()):
        bundled = by_version.get(version)
        if not bundled:
            if newest_file is not None and newest_file > version:
                plan.refusals.append(
                    f"{entry.name}: version {version} is applied but its file is missing "
                    f"from the bundle, while newer files exist (up to version {newest_file})"
                )
            else:
                plan.ahead.append(entry)
            continue
        plan.applied.append(entry)
        migration = bundled[0]
        if len(bundled) == 1 and migration.checksum != entry.checksum:
            drift = Drift(migration.filename, entry.checksum, migration.checksum)
            plan.drift.append(drift)
            plan.refusals.append(drift.describe())

    for version, same in sorted(by_version.items()):
        if version in done:
            continue
        migration = same[0]
        if latest_applied is not None and version < latest_applied and not allow_out_of_order:
            plan.refusals.append(
                f"{migration.filename}: version {version} is new but below the latest applied "
                f"version {latest_applied} (renumber it, or allow out-of-order explicitly)"
            )
            continue
        if len(same) == 1:
            plan.pending.append(migration)
    return plan
