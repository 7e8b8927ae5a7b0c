"""Throwaway migration folders for the runner's tests."""

from __future__ import annotations

from pathlib import Path

from lambdas.migrations.report import MigrationReport


class MigrationFolder:
    """A ``database/migrations``-like folder a test writes files into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def add(self, filename: str, sql: str) -> Path:
        target = self.path / filename
        target.write_text(sql)
        return target

    def remove(self, filename: str) -> None:
        (self.path / filename).unlink()


def applied_files(report: MigrationReport) -> list[str]:
    return [item.file for item in report.applied]
