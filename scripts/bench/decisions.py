"""Benchmark the decision route warm and in-process: ``POST /api/approvals/{id}/decisions``
through the approvals function's ``lambda_handler`` with real payload v2.0 events, on embedded
PostgreSQL migrated by the migration Lambda, with moto for the secrets (as the local stack).

Each request decides a fresh pending request (a decider decides a request once), two kinds in
turn (alternating, so load falls on both alike):

  approve, still pending  quorum 2: the first approval (the decision, its audit row and event);
  approve, quorum reached quorum 1: the request ends approved, its requester is notified too.

Every request carries the full path: the JWT claims, the membership lookup opening the
transaction, the route's validation, the database's rules (triggers), the audit append, the
outbox event, COMMIT, and the response: three round trips (the opening; the decision,
``decide_approval_v3`` in a pipelined savepoint; COMMIT).

Besides wall-clock latency it reports the CPU a decision costs, which the machine's load does not
change: the client's (this process, ``time.process_time``) per request, and the PostgreSQL
backend's (from /proc) over the run divided by the requests. On a loaded machine the wall clock
also holds the time both spend waiting for a core at each round trip. ``--profile N`` prints
cProfile's top N functions of the timed requests (it slows them: its latencies are not reported).

Target: p50 <= 5 ms warm.

Example:
  uv run python scripts/bench/decisions.py                  # 500 decisions of each kind
  uv run python scripts/bench/decisions.py --requests 1000 --write docs/benchmarks.md
  uv run python scripts/bench/decisions.py --requests 200 --profile 30   # where the time goes
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench.stats import percentile  # noqa: E402
from scripts.bench.support import machine_description, write_section  # noqa: E402

SECTION_TITLE = "## Approval decisions"
TARGET_P50_MS = 5.0
KINDS = {"pending": 2, "approved": 1}  # what the decision leaves -> the request's quorum
QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@contextmanager
def local_stack() -> Iterator[str]:
    """Embedded PostgreSQL migrated by the migration Lambda, with moto: the owner's URL."""
    import psycopg  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    from scripts.devstack.postgres import EmbeddedPostgres, free_port  # noqa: PLC0415
    from scripts.devstack.stack import (  # noqa: PLC0415
        LOCAL_AWS_ENV,
        QUIET_POWERTOOLS_ENV,
        environment,
        provision_and_migrate,
    )

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", port=free_port(), ephemeral=True)
        server.start()
        try:
            with psycopg.connect(server.connection.url("postgres"), autocommit=True) as conn:
                conn.execute('CREATE DATABASE "alquimista"')
            with environment({**LOCAL_AWS_ENV, **QUIET_POWERTOOLS_ENV, **QUIET}), mock_aws():
                provision_and_migrate("dev", server.connection, dbname="alquimista")
                yield server.connection.url("alquimista")
        finally:
            server.destroy()


def seed(owner_url: str, count: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A tenant with a requesting member and a deciding admin (through the product's membership
    writer), and ``count`` pending requests of each kind asked by the member. Returns the
    admin's JWT claims and the request ids by kind."""
    import psycopg  # noqa: PLC0415

    from lambdas.migrations.memberships import GrantMembership, grant_membership  # noqa: PLC0415

    users: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    with psycopg.connect(owner_url) as conn, conn.transaction():
        for role in ("member", "admin"):
            sub = uuid.uuid4()
            granted = grant_membership(
                conn,
                GrantMembership(
                    tenant_slug="bench",
                    tenant_name="Bench",
                    cognito_sub=sub,
                    email=f"{role}@bench.example.com",
                    role=role,
                ),
            )
            users[role] = (sub, granted.user_id)
        tenant = granted.tenant_id
        requests: dict[str, list[str]] = {}
        for kind, quorum in KINDS.items():
            rows = conn.execute(
                """
                INSERT INTO alquimista_platform.approval_requests
                    (tenant_id, subject_kind, subject_id, action_type, summary, requested_by,
                     required_approvals, expires_at)
                SELECT %s, 'chat.message', 'bench-' || %s || '-' || n, 'chat.send',
                       'A benchmark request', %s, %s, now() + interval '1 day'
                FROM generate_series(1, %s) AS n
                RETURNING id
                """,
                (tenant, kind, users["member"][1], quorum, count),
            ).fetchall()
            requests[kind] = [str(row[0]) for row in rows]
    claims = {
        "sub": str(users["admin"][0]),
        "email": "admin@bench.example.com",
        "custom:tenant_id": str(tenant),
    }
    return claims, requests


def decision_event(claims: dict[str, str], approval_id: str) -> dict[str, Any]:
    """The event of ``POST /api/approvals/{approval_id}/decisions``, as the gateway builds it."""
    from lambdas.shared.routes import route_for_key  # noqa: PLC0415
    from scripts.devstack.gateway import build_event  # noqa: PLC0415

    route = route_for_key("POST /api/approvals/{approval_id}/decisions")
    if route is None:
        raise LookupError("the decision route is not in the route table")
    path = f"/api/approvals/{approval_id}/decisions"
    return build_event(
        route=route,
        method="POST",
        url_path=path,
        query="",
        headers={"host": "127.0.0.1", "content-type": "application/json"},
        body=json.dumps({"decision": "approved", "reason": "checked"}).encode(),
        path_params={"approval_id": approval_id},
        claims=claims,
        request_id=str(uuid.uuid4()),
        source_ip="127.0.0.1",
    )


@dataclass
class Samples:
    wall_ms: dict[str, list[float]]  # per request, by kind
    client_cpu_ms: dict[str, list[float]]  # per request, by kind
    backend_cpu_ms: float  # per request, both kinds (the kernel counts it in clock ticks)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a local process (the handler's PostgreSQL backend)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(requests: int, warmup: int, *, profile: int = 0) -> Samples:
    import cProfile  # noqa: PLC0415
    import pstats  # noqa: PLC0415
    import time  # noqa: PLC0415

    from lambdas.shared.runtime import get_runtime  # noqa: PLC0415
    from scripts.devstack.gateway import LambdaContextStub  # noqa: PLC0415

    with local_stack() as owner_url:
        claims, ids = seed(owner_url, requests + warmup)
        handler: Handler = importlib.import_module("lambdas.approvals.handler").lambda_handler
        context = LambdaContextStub(function_name="bench")
        events = {kind: [decision_event(claims, i) for i in ids[kind]] for kind in KINDS}
        wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
        cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
        profiler = cProfile.Profile() if profile else None
        backend = 0
        backend_started = 0.0
        for n in range(requests + warmup):
            if n == warmup:
                backend = int(get_runtime().database.connection().info.backend_pid)
                backend_started = _cpu_s(backend)
            for kind in KINDS:
                event = events[kind][n]
                if profiler is not None and n >= warmup:
                    profiler.enable()
                started, cpu_started = time.perf_counter(), time.process_time()
                answer = handler(event, context)
                elapsed = (time.perf_counter() - started) * 1000
                cpu_ms = (time.process_time() - cpu_started) * 1000
                if profiler is not None:
                    profiler.disable()
                body = json.loads(answer["body"])
                if answer["statusCode"] != 200 or body["status"] != kind:
                    raise SystemExit(f"the decision answered {answer['statusCode']}: {body}")
                if n >= warmup:
                    wall[kind].append(elapsed)
                    cpu[kind].append(cpu_ms)
        backend_ms = (_cpu_s(backend) - backend_started) * 1000 / (requests * len(KINDS))
        if profiler is not None:
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(profile)
            stats.sort_stats("tottime").print_stats(profile)
    return Samples(wall_ms=wall, client_cpu_ms=cpu, backend_cpu_ms=backend_ms)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def render(samples: Samples, *, machine: str, requests: int, load: tuple[str, str]) -> str:
    labels = {"pending": "approve, still pending (quorum 2)", "approved": "approve, quorum reached"}
    rows = []
    for kind, values in samples.wall_ms.items():
        p50 = statistics.median(values)
        met = "met" if p50 <= TARGET_P50_MS else "NOT met"
        client = statistics.median(samples.client_cpu_ms[kind])
        rows.append(
            f"| {labels[kind]} | {p50:.2f} ms | {percentile(values, 95):.2f} ms "
            f"| {percentile(values, 99):.2f} ms | {client:.2f} ms "
            f"| p50 <= {TARGET_P50_MS} ms | {met} |"
        )
    table = "\n".join(rows)
    return f"""{SECTION_TITLE}

`uv run --frozen python scripts/bench/decisions.py --requests {requests} --write docs/benchmarks.md`
(in-process: the approvals function's `lambda_handler` with payload v2.0 events; embedded
PostgreSQL 18 over loopback TCP as the runtime role, moto for the secrets; every request decides a
fresh pending request, the two kinds alternating). Machine: {machine}; load average (1 / 5 / 15
min) {load[0]} at the start, {load[1]} at the end.

| `POST /api/approvals/{{id}}/decisions` | p50 | p95 | p99 | client CPU p50 | target | |
|---|---|---|---|---|---|---|
{table}

PostgreSQL backend CPU per decision (both kinds, over the run): {samples.backend_cpu_ms:.2f} ms.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="timed decisions of each kind")
    parser.add_argument("--warmup", type=int, default=50, help="untimed decisions of each kind")
    parser.add_argument("--write", type=Path, help="update this section of this file")
    parser.add_argument("--machine", default=machine_description(), help="describe the machine")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print cProfile's top N functions"
    )
    args = parser.parse_args(argv)
    os.environ.update(QUIET)
    # the handler's metrics are disabled: Powertools warns that none were published
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    before = _load()
    samples = measure(args.requests, args.warmup, profile=args.profile)
    section = render(samples, machine=args.machine, requests=args.requests, load=(before, _load()))
    print(section)
    if args.write:
        write_section(args.write, section)
    worst = max(statistics.median(values) for values in samples.wall_ms.values())
    return 0 if worst <= TARGET_P50_MS else 1


if __name__ == "__main__":
    sys.exit(main())
