"""Benchmark the migration runner against plain psql on the same PostgreSQL server.

For each round: a fresh database gets every bundled file through `psql -f` (one process per
file, in order, as the legacy process did), another fresh database gets them through the
runner (lock, ledger, one transaction per file), then the runner runs again with nothing
pending (the no-op every deploy pays). Medians are reported.

Targets: fresh apply <= 1.2x the psql sum; no-op <= 100 ms.

  uv run python scripts/bench/migrations.py                 # embedded PostgreSQL in a temp dir
  uv run python scripts/bench/migrations.py --rounds 9 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The runner logs each file at INFO for CloudWatch; a terminal wants the report only.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.migrations.runner import MigrationRunner  # noqa: E402
from lambdas.shared.migration_files import MIGRATIONS_DIR, discover  # noqa: E402
from scripts.bench.support import (  # noqa: E402
    benchmark_server,
    machine_description,
    scratch_database,
    write_section,
)
from scripts.devstack.postgres import ConnectionInfo, _bin_dir  # noqa: E402

SECTION_TITLE = "## Migrations"
FRESH_RATIO_TARGET = 1.2
NOOP_TARGET_MS = 100.0


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _psql_sum_ms(server: ConnectionInfo, dbname: str) -> float:
    psql = str(_bin_dir() / "psql")
    env = {**os.environ, "PGPASSWORD": server.password}
    base = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port)]
    base += ["-U", server.user, "-d", dbname]
    total = 0.0
    for migration in discover(MIGRATIONS_DIR):
        command = [*base, "-f", str(migration.path)]
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env, capture_output=True)
        total += (time.perf_counter() - started) * 1000
    return total


def _runner_ms(url: str) -> float:
    def apply() -> None:
        report = MigrationRunner(url).apply()
        if not report.ok:
            raise SystemExit(f"runner failed: {report.error}")

    return _timed(apply)


def run(server: ConnectionInfo, rounds: int) -> dict[str, float]:
    psql: list[float] = []
    fresh: list[float] = []
    noop: list[float] = []
    _runner_ms_warmup(server)
    for _ in range(rounds):
        with scratch_database(server) as dbname:
            psql.append(_psql_sum_ms(server, dbname))
        with scratch_database(server) as dbname:
            url = server.url(dbname)
            fresh.append(_runner_ms(url))
            noop.extend(_runner_ms(url) for _ in range(3))
    return {
        "psql_ms": statistics.median(psql),
        "fresh_ms": statistics.median(fresh),
        "noop_ms": statistics.median(noop),
        "files": float(len(discover(MIGRATIONS_DIR))),
        "rounds": float(rounds),
    }


def _runner_ms_warmup(server: ConnectionInfo) -> None:
    """First connections and imports are not what a warm deploy pays; pay them once here."""
    with scratch_database(server) as dbname:
        _runner_ms(server.url(dbname))


def render(results: dict[str, float], machine: str) -> str:
    ratio = results["fresh_ms"] / results["psql_ms"]
    fresh_ok = "met" if ratio <= FRESH_RATIO_TARGET else "MISSED"
    noop_ok = "met" if results["noop_ms"] <= NOOP_TARGET_MS else "MISSED"
    return f"""{SECTION_TITLE}

`uv run python scripts/bench/migrations.py --rounds {int(results["rounds"])}` (medians;
{int(results["files"])} files; PostgreSQL 18 embedded, default durability settings).
Machine: {machine}.

| measure | result | target | |
|---|---|---|---|
| `psql -f`, each file in order (sum, one process per file) | {results["psql_ms"]:.0f} ms | baseline | |
| runner, fresh apply (lock, ledger, one transaction per file) | {results["fresh_ms"]:.0f} ms ({ratio:.2f}x psql) | <= {FRESH_RATIO_TARGET}x | {fresh_ok} |
| runner, no-op re-run (lock + one ledger query) | {results["noop_ms"]:.1f} ms | <= {NOOP_TARGET_MS:.0f} ms | {noop_ok} |

The runner is timed end to end in-process, connections included; psql's sum includes its
process start per file, which is what the legacy hand-run process paid.
"""  # noqa: E501


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="use this server (as superuser) instead")
    parser.add_argument("--write", type=Path, help="update the Migrations section of this file")
    parser.add_argument(
        "--machine",
        default=machine_description(),
        help="how to describe the machine in the results",
    )
    args = parser.parse_args(argv)
    with benchmark_server(args.database_url) as server:
        results = run(server, args.rounds)
    section = render(results, args.machine)
    print(section)
    if args.write:
        write_section(args.write, section)
    ratio = results["fresh_ms"] / results["psql_ms"]
    return 0 if ratio <= FRESH_RATIO_TARGET and results["noop_ms"] <= NOOP_TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
