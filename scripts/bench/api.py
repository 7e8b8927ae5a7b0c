"""Benchmark the API Lambdas in-process: warm latency of GET /api/plans and GET /api/agents
through ``lambda_handler`` with real payload v2.0 events on embedded PostgreSQL (moto for the
secrets), beside the time of the same SQL run through the repositories alone; and the cold
import CPU time of each non-chat handler module in a fresh interpreter (openai must stay out).

Example:
  uv run python scripts/bench/api.py                  # 2000 warm requests per route
  uv run python scripts/bench/api.py --requests 500 --imports 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_P50_MS = 2.0
TARGET_P99_MS = 5.0
TARGET_IMPORT_MS = 350.0

IMPORT_PROBE = """
import sys, time
started = time.process_time()
import lambdas.{group}.handler
elapsed = (time.process_time() - started) * 1000
print(elapsed, 'openai' in sys.modules)
"""


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def measure(fn: Callable[[], Any], *, requests: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def cold_imports(groups: list[str], runs: int) -> dict[str, tuple[float, float, bool]]:
    """Median and max import CPU ms per group, and whether openai was ever imported."""
    results = {}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    for group in groups:
        times, leaked = [], False
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE.format(group=group)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            times.append(float(out[0]))
            leaked |= out[1] == "True"
        results[group] = (statistics.median(times), max(times), leaked)
    return results


def _seed(owner_url: str) -> dict[str, str]:
    """Catalog, one tenant and one viewer; returns the viewer's JWT claims."""
    import psycopg  # noqa: PLC0415

    from scripts.devstack.seed_catalog import seed_catalog  # noqa: PLC0415

    seed_catalog(owner_url)
    sub = uuid.uuid4()
    with psycopg.connect(owner_url) as conn, conn.transaction():
        tenant_id = conn.execute(
            "INSERT INTO alquimista_platform.tenants (slug, name) VALUES ('bench', 'Bench') "
            "RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        user_id = conn.execute(
            "INSERT INTO alquimista_platform.users (cognito_sub, email) "
            "VALUES (%s, 'viewer@bench.example.com') RETURNING id",
            (sub,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))
        conn.execute(
            """
            INSERT INTO alquimista_platform.memberships (tenant_id, user_id, role_id)
            SELECT %s, %s, id FROM alquimista_platform.roles WHERE name = 'viewer'
            """,
            (tenant_id, user_id),
        )
    return {
        "sub": str(sub),
        "email": "viewer@bench.example.com",
        "custom:tenant_id": str(tenant_id),
    }


def _measure_routes(
    claims: dict[str, str], *, requests: int, warmup: int
) -> dict[str, dict[str, float]]:
    from lambdas.agents.handler import lambda_handler as agents_handler  # noqa: PLC0415
    from lambdas.agents.repository import AgentsUnitOfWork  # noqa: PLC0415
    from lambdas.plans.handler import lambda_handler as plans_handler  # noqa: PLC0415
    from lambdas.plans.repository import PlansUnitOfWork  # noqa: PLC0415
    from lambdas.shared.auth_repository import AuthUnitOfWork  # noqa: PLC0415
    from lambdas.shared.http import get_database  # noqa: PLC0415
    from lambdas.shared.routes import route_for_key  # noqa: PLC0415
    from scripts.devstack.gateway import LambdaContextStub, build_event  # noqa: PLC0415

    results: dict[str, dict[str, float]] = {}
    tenant = uuid.UUID(claims["custom:tenant_id"])
    sub = uuid.UUID(claims["sub"])

    def event(path: str) -> dict[str, Any]:
        route = route_for_key(f"GET {path}")
        if route is None:
            raise LookupError(path)
        return build_event(
            route=route,
            method="GET",
            url_path=path,
            query="",
            headers={"host": "127.0.0.1"},
            body=b"",
            path_params={},
            claims=claims,
            request_id=str(uuid.uuid4()),
            source_ip="127.0.0.1",
        )

    context = LambdaContextStub(function_name="bench")
    database = get_database()

    # The same transactions the handler runs for a GET: read-only, the membership lookup
    # handing its transaction over to the route's unit of work.
    def plans_sql() -> None:
        with AuthUnitOfWork(database, tenant, read_only=True, hand_over=True) as uow:
            uow.memberships.grant_for(sub, tenant)
        with PlansUnitOfWork(database, tenant, read_only=True) as plans:
            plans.plans.list_active()

    def agents_sql() -> None:
        with AuthUnitOfWork(database, tenant, read_only=True, hand_over=True) as uow:
            uow.memberships.grant_for(sub, tenant)
        with AgentsUnitOfWork(database, tenant, read_only=True) as agents:
            agents.catalog.page(category=None, subnucleo=None, after_slug=None, limit=21)

    cases = {
        "GET /api/plans": (plans_handler, "/api/plans", plans_sql),
        "GET /api/agents": (agents_handler, "/api/agents", agents_sql),
    }
    for name, (handler, path, sql) in cases.items():
        evt = event(path)
        check = handler(evt, context)
        if check["statusCode"] != 200:
            raise SystemExit(f"{name} answered {check['statusCode']}: {check['body']}")
        via_handler = measure(partial(handler, evt, context), requests=requests, warmup=warmup)
        via_sql = measure(sql, requests=requests, warmup=warmup)
        results[name] = {
            "p50": percentile(via_handler, 50),
            "p99": percentile(via_handler, 99),
            "sql_p50": percentile(via_sql, 50),
            "sql_p99": percentile(via_sql, 99),
        }
    database.close()
    return results


def warm_latency(requests: int, warmup: int) -> dict[str, dict[str, float]]:
    from moto import mock_aws  # noqa: PLC0415

    from scripts.devstack.postgres import EmbeddedPostgres, free_port  # noqa: PLC0415
    from scripts.devstack.stack import (  # noqa: PLC0415
        LOCAL_AWS_ENV,
        QUIET_POWERTOOLS_ENV,
        environment,
        provision_and_migrate,
    )

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", port=free_port(), ephemeral=True)
        server.start()
        try:
            import psycopg  # noqa: PLC0415

            with psycopg.connect(server.connection.url("postgres"), autocommit=True) as conn:
                conn.execute('CREATE DATABASE "alquimista"')
            env = {
                **LOCAL_AWS_ENV,
                **QUIET_POWERTOOLS_ENV,
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
            with environment(env), mock_aws():
                provision_and_migrate("dev", server.connection, dbname="alquimista")
                claims = _seed(server.connection.url("alquimista"))
                results = _measure_routes(claims, requests=requests, warmup=warmup)
        finally:
            server.destroy()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per route")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    parser.add_argument("--imports", type=int, default=5, help="fresh interpreters per module")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", "No application metrics to publish")

    from lambdas.shared.routes import GROUPS  # noqa: PLC0415

    latency = warm_latency(args.requests, args.warmup)
    imports = cold_imports([g for g in GROUPS if g != "chat"], args.imports)
    if args.json:
        print(json.dumps({"latency_ms": latency, "imports_ms": imports}, indent=2))
    else:
        print(f"warm latency over {args.requests} requests (ms)")
        print("| route | p50 | p99 | SQL p50 | SQL p99 |")
        print("|---|---|---|---|---|")
        for name, row in latency.items():
            print(
                f"| `{name}` | {row['p50']:.2f} | {row['p99']:.2f} "
                f"| {row['sql_p50']:.2f} | {row['sql_p99']:.2f} |"
            )
        print(f"\ncold import CPU of each handler module, {args.imports} fresh interpreters (ms)")
        print("| module | median | max | openai imported |")
        print("|---|---|---|---|")
        for group, (median, worst, leaked) in imports.items():
            print(f"| `lambdas.{group}.handler` | {median:.0f} | {worst:.0f} | {leaked} |")
    failed = [n for n, r in latency.items() if r["p50"] > TARGET_P50_MS or r["p99"] > TARGET_P99_MS]
    failed += [g for g, (_, worst, leaked) in imports.items() if worst > TARGET_IMPORT_MS or leaked]
    if failed:
        print(f"\nover target: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
