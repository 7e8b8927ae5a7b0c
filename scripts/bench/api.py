"""Benchmark the API Lambdas in-process: warm latency of GET /api/plans and GET /api/agents
through ``lambda_handler`` with real payload v2.0 events on embedded PostgreSQL (moto for the
secrets), beside the time of the same SQL run through the repositories alone; and the cold
import CPU time of each non-chat handler module in a fresh interpreter set up like its
function (Lambda's variables, only the code, the base layer and the runtime's boto3 on the
path), with bytecode and without, beside a calibration loop (openai must stay out).

Example:
  uv run python scripts/bench/api.py                  # 2000 warm requests per route
  uv run python scripts/bench/api.py --requests 500 --imports 3
  uv run python scripts/bench/api.py --only imports   # the cold imports alone
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache, partial
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
print(elapsed, 'openai' in sys.modules, 'aws_xray_sdk.core.sampling.connector' in sys.modules)
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


CALIBRATION_PROBE = """
import time
started = time.process_time()
sum(i * i for i in range(3_000_000))
print((time.process_time() - started) * 1000)
"""


def _calibration_probe() -> float:
    """CPU time of a fixed pure-Python loop in a fresh interpreter: how fast the (shared)
    machine was while the imports were measured, to compare runs with each other."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", CALIBRATION_PROBE], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


@dataclass(frozen=True)
class ImportResult:
    median_ms: float
    max_ms: float
    median_without_bytecode_ms: float
    openai_imported: bool


@cache
def _lambda_like_paths() -> tuple[Path, Path]:
    """The base layer and the runtime's boto3, installed for this interpreter (built once)."""
    from stacks.packaging.layers import (  # noqa: PLC0415
        BASE_LAYER,
        HOST,
        build_layer,
        build_runtime_replica,
    )

    return build_layer(BASE_LAYER, HOST) / "python", build_runtime_replica() / "python"


def _lambda_environment(group: str, code: Path, layer: Path, runtime: Path) -> dict[str, str]:
    """What the function's process sees: the variables Lambda sets and those the stack sets,
    and on the path only the code, the layer and the runtime's boto3 (``-S``: no venv)."""
    from stacks.constants import POWERTOOLS_ENVIRONMENT  # noqa: PLC0415

    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(str(p) for p in (code, layer, runtime)),
        "LAMBDA_TASK_ROOT": str(code),
        "AWS_LAMBDA_FUNCTION_NAME": f"alquimista-bench-{group}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "_HANDLER": f"lambdas.{group}.handler.lambda_handler",
        **POWERTOOLS_ENVIRONMENT,
    }


def _probe(group: str, env: dict[str, str], cwd: Path) -> tuple[float, bool, bool]:
    out = subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_PROBE.format(group=group)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), out[1] == "True", out[2] == "True"


def _instructions(code: str, env: dict[str, str], cwd: Path) -> int:
    """Instructions a fresh ``python -S -c code`` executes, counted by callgrind: unlike CPU
    time, the same on a busy machine as on an idle one."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as scratch:
        run = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={scratch}/callgrind.out",
                sys.executable,
                "-S",
                "-c",
                code,
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def import_instructions(groups: list[str]) -> dict[str, int]:
    """Instructions of each handler's import (the interpreter's own start-up subtracted)."""
    layer, runtime = _lambda_like_paths()
    results = {}
    for group in groups:
        env = _lambda_environment(group, ROOT, layer, runtime)
        _probe(group, env, ROOT)  # writes the bytecode caches
        started = _instructions("pass", env, ROOT)
        results[group] = _instructions(f"import lambdas.{group}.handler", env, ROOT) - started
    return results


def cold_imports(groups: list[str], runs: int) -> tuple[dict[str, ImportResult], float]:
    """Import CPU of each handler in a fresh interpreter set up like its Lambda function, and
    the calibration loop's CPU, interleaved round by round so drift on a shared machine falls
    on every measure alike.

    Two conditions: with bytecode next to the sources (one untimed import writes it first),
    as the bundles ship it when built on a machine with Python 3.13; and with none at all, what
    a function pays for bundles built without bytecode: its code and layers are read-only, so
    Lambda compiles every module it imports on each cold start.
    """
    layer, runtime = _lambda_like_paths()
    cached = {group: _lambda_environment(group, ROOT, layer, runtime) for group in groups}
    times: dict[str, list[float]] = {group: [] for group in groups}
    bare_times: dict[str, list[float]] = {group: [] for group in groups}
    leaked: set[str] = set()
    calibration: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        copies: list[Path] = []
        for source in (ROOT / "lambdas", layer, runtime):
            copy = Path(scratch) / str(len(copies))
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            target = copy / "lambdas" if source.name == "lambdas" else copy
            shutil.copytree(source, target, ignore=ignore)
            copies.append(copy)
        bare = {
            group: _lambda_environment(group, *copies) | {"PYTHONDONTWRITEBYTECODE": "1"}
            for group in groups
        }
        for group in groups:
            _probe(group, cached[group], ROOT)  # writes the bytecode caches
        for _ in range(runs):
            calibration.append(_calibration_probe())
            for group in groups:
                elapsed, openai, sampler_client = _probe(group, cached[group], ROOT)
                if sampler_client:
                    raise SystemExit("the X-Ray SDK built its sampling client: not Lambda's setup")
                times[group].append(elapsed)
                if openai:
                    leaked.add(group)
        # after, not between: compiling ~800 modules per probe slows the probes that follow
        for _ in range(runs):
            for group in groups:
                bare_times[group].append(_probe(group, bare[group], copies[0])[0])
    results = {
        group: ImportResult(
            median_ms=statistics.median(times[group]),
            max_ms=max(times[group]),
            median_without_bytecode_ms=statistics.median(bare_times[group]),
            openai_imported=group in leaked,
        )
        for group in groups
    }
    return results, statistics.median(calibration)


def _seed(owner_url: str) -> dict[str, str]:
    """Catalog, one tenant and one viewer; returns the viewer's JWT claims."""
    import psycopg  # noqa: PLC0415

    from lambdas.migrations.memberships import add_membership  # noqa: PLC0415
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
        add_membership(conn, tenant_id=tenant_id, user_id=user_id, role="viewer")
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
    def membership() -> None:
        with AuthUnitOfWork(database, tenant, sub, read_only=True, hand_over=True) as uow:
            if uow.grant is None:
                raise SystemExit("the benchmark's viewer has no membership")

    def plans_sql() -> None:
        membership()
        with PlansUnitOfWork(database, tenant, read_only=True) as plans:
            plans.plans.list_active()

    def agents_sql() -> None:
        membership()
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
    parser.add_argument(
        "--imports", type=int, default=11, help="fresh interpreters per module and condition"
    )
    parser.add_argument(
        "--only", choices=("latency", "imports"), help="run one of the two measurements"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each import's instructions with valgrind (~20 s per module)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", "No application metrics to publish")

    from lambdas.shared.routes import GROUPS  # noqa: PLC0415

    latency = warm_latency(args.requests, args.warmup) if args.only != "imports" else {}
    groups = [g for g in GROUPS if g != "chat"]
    imports, calibration = (
        cold_imports(groups, args.imports) if args.only != "latency" else ({}, None)
    )
    instructions = (
        import_instructions(groups) if args.instructions and args.only != "latency" else {}
    )
    if args.json:
        payload = {
            "latency_ms": latency,
            "imports_ms": {g: asdict(r) for g, r in imports.items()},
            "calibration_loop_ms": calibration,
            "import_instructions": instructions,
        }
        print(json.dumps(payload, indent=2))
    else:
        _print_tables(latency, imports, args)
        if calibration is not None:
            print(f"calibration: a fixed 3M-step Python loop took {calibration:.0f} ms CPU")
        for group, count in instructions.items():
            print(f"instructions, import of lambdas.{group}.handler: {count / 1e9:.3f} G")
    failed = [n for n, r in latency.items() if r["p50"] > TARGET_P50_MS or r["p99"] > TARGET_P99_MS]
    failed += [g for g, r in imports.items() if r.median_ms > TARGET_IMPORT_MS or r.openai_imported]
    if failed:
        print(f"\nover target: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _print_tables(
    latency: dict[str, dict[str, float]], imports: dict[str, ImportResult], args: Any
) -> None:
    if latency:
        print(f"warm latency over {args.requests} requests (ms)")
        print("| route | p50 | p99 | SQL p50 | SQL p99 |")
        print("|---|---|---|---|---|")
        for name, row in latency.items():
            print(
                f"| `{name}` | {row['p50']:.2f} | {row['p99']:.2f} "
                f"| {row['sql_p50']:.2f} | {row['sql_p99']:.2f} |"
            )
    if imports:
        print(
            f"\ncold import CPU of each handler module as its function loads it, "
            f"{args.imports} fresh interpreters (ms)"
        )
        print("| module | median | max | median, no bytecode | openai imported |")
        print("|---|---|---|---|---|")
        for group, r in imports.items():
            print(
                f"| `lambdas.{group}.handler` | {r.median_ms:.0f} | {r.max_ms:.0f} "
                f"| {r.median_without_bytecode_ms:.0f} | {r.openai_imported} |"
            )


if __name__ == "__main__":
    sys.exit(main())
