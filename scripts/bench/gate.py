"""Benchmark what the gate adds to a request: a write transaction (BEGIN + tenant scope, one
UPDATE, COMMIT) through a real unit of work as the runtime role, without and with
``gate.authorize`` for an allowed subject (alternating), with the tenant holding no rules and
holding 20 active rules that do not match. The gate's allow path is: load the active rules and
the default, evaluate, insert the evaluation.

Target: authorize() for an allowed subject adds <= 2 ms at p50.

  uv run python scripts/bench/gate.py                       # embedded PostgreSQL in a temp dir
  uv run python scripts/bench/gate.py --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from lambdas.policies.matcher import Subject  # noqa: E402
from lambdas.policies.models import RuleDraft  # noqa: E402
from lambdas.policies.repository import PolicyRepository  # noqa: E402
from lambdas.shared import gate  # noqa: E402
from lambdas.shared.db import Database, UnitOfWork, set_tenant  # noqa: E402
from lambdas.shared.runtime import WRITERS  # noqa: E402
from lambdas.shared.scope import RequestScope  # noqa: E402
from lambdas.shared.secrets import DbCredentials  # noqa: E402
from scripts.bench.audit import _database, _server, _tenants  # noqa: E402
from scripts.bench.support import write_section  # noqa: E402
from scripts.devstack.postgres import ConnectionInfo  # noqa: E402

SECTION_TITLE = "## Policy gate"
ADDED_P50_TARGET_MS = 2.0
TEXT = "Olá, gostaria de agendar uma reunião para discutir a proposta. " * 30  # ~2,000 chars


def _rules(owner_url: str, tenant: uuid.UUID, count: int) -> None:
    with psycopg.connect(owner_url, row_factory=dict_row) as conn:
        set_tenant(conn, tenant)
        repo = PolicyRepository(conn, tenant)
        for i in range(count):
            repo.create(
                RuleDraft(
                    name=f"rule {i}",
                    effect="block" if i % 2 else "require_approval",
                    required_approvals=None if i % 2 else 2,
                    priority=i,
                    matcher={
                        "subject_kinds": ["lead.outreach"],
                        "keywords": [f"palavra{i}"],
                        "detectors": ["cpf"],
                    },
                ),
                actor_id=None,
            )
        conn.commit()


def _measure(database: Database, tenant: uuid.UUID, rounds: int) -> tuple[float, float]:
    """p50 (ms) of the write transaction without and with the gate (alternating)."""
    without: list[float] = []
    gated: list[float] = []
    for i in range(rounds + 50):
        for target, with_gate in ((without, False), (gated, True)):
            started = time.perf_counter()
            with UnitOfWork(RequestScope(lambda: database, writers=WRITERS), tenant) as uow:
                if with_gate:
                    decision = gate.authorize(
                        uow,
                        Subject(kind="chat.message", id=f"m-{i}", text=TEXT),
                        summary="bench",
                    )
                    if not decision.allowed:
                        raise RuntimeError(f"the gate did not allow: {decision.reason}")
                uow.conn.execute(
                    "UPDATE alquimista_platform.tenants SET metadata = metadata WHERE id = %s",
                    (tenant,),
                )
                uow.commit()
            if i >= 50:  # warm-up
                target.append((time.perf_counter() - started) * 1000)
    return statistics.median(without), statistics.median(gated)


def run(server: ConnectionInfo, *, rounds: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with _database(server) as (owner_url, runtime_url):
        params = psycopg.conninfo.conninfo_to_dict(runtime_url)
        creds = DbCredentials(
            host=str(params["host"]),
            port=int(str(params["port"])),
            dbname=str(params["dbname"]),
            username=str(params["user"]),
            password=str(params["password"]),
        )
        database = Database(lambda force: creds, connect_timeout_s=5, application_name="bench")
        empty, ruled = _tenants(owner_url, 2)
        _rules(owner_url, ruled, 20)
        results["none_without"], results["none_with"] = _measure(database, empty, rounds)
        results["rules_without"], results["rules_with"] = _measure(database, ruled, rounds)
        database.close()
    return results


def render(results: dict[str, float], machine: str, rounds: int) -> str:
    rows = []
    for key, label in (("none", "no rules (default allow)"), ("rules", "20 non-matching rules")):
        added = results[f"{key}_with"] - results[f"{key}_without"]
        met = "met" if added <= ADDED_P50_TARGET_MS else "NOT met"
        rows.append(
            f"| {label} | {results[f'{key}_without']:.3f} / {results[f'{key}_with']:.3f} ms "
            f"(+{added:.3f} ms) | <= +{ADDED_P50_TARGET_MS} ms | {met} |"
        )
    table = "\n".join(rows)
    return f"""{SECTION_TITLE}

`uv run python scripts/bench/gate.py --rounds {rounds}` (embedded PostgreSQL 18, loopback TCP,
runtime role, a real unit of work per transaction; ~2,000-character subject). Write
transaction p50 without / with `gate.authorize()` for an allowed subject. Machine: {machine}.

| tenant | p50 without / with the gate | target | |
|---|---|---|---|
{table}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=500, help="timed transactions of each kind")
    parser.add_argument("--database-url", help="use this server (as superuser) instead")
    parser.add_argument("--write", type=Path, help="update the Policy gate section of this file")
    parser.add_argument(
        "--machine",
        default=f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}",
        help="how to describe the machine in the results",
    )
    args = parser.parse_args(argv)
    with _server(args.database_url) as server:
        results = run(server, rounds=args.rounds)
    section = render(results, args.machine, args.rounds)
    print(section)
    if args.write:
        write_section(args.write, section)
    added = max(results["none_with"] - results["none_without"], 0.0)
    return 0 if added <= ADDED_P50_TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
