"""One side of a warm-latency comparison: serve timed GETs through the route handlers of the
code in ``--code`` (this checkout, or a baseline commit's worktree) on an embedded PostgreSQL
of its own with moto for the secrets.

Standalone on purpose: it imports nothing from ``scripts.bench``, only what every commit of the
project has (``lambdas.<group>.handler.lambda_handler``, ``scripts.devstack``), so the same
worker measures old code and new alike. ``scripts/bench/api.py`` drives it over stdin/stdout,
one JSON object a line:

  -> {"ready": true}                              once the stack is up and seeded
  <- {"path": "/api/plans", "requests": 500, "warmup": 50}
  -> {"samples_ms": [...], "cpu_ms": [...]}       wall clock and this process's CPU, per request
  <- {"decide": "pending", "requests": 300, "warmup": 30}
  -> {"samples_ms": [...], "cpu_ms": [...], "backend_cpu_ms": 3.1}

A ``decide`` ask times ``POST /api/approvals/{id}/decisions``, each on a fresh pending request
(seeded before the timed loop): ``pending`` leaves it pending (quorum 2), ``approved`` ends it
(quorum 1). ``backend_cpu_ms`` is the PostgreSQL backend's CPU per decision over the loop.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
QUORUM = {"pending": 2, "approved": 1}  # what a decision leaves -> the request's quorum
DECISION_ROUTE = "POST /api/approvals/{approval_id}/decisions"


def _seed(owner_url: str) -> dict[str, str]:
    """The dev catalog and one viewer of one tenant (through the product's own membership
    writer); returns the viewer's JWT claims."""
    import psycopg  # noqa: PLC0415

    from lambdas.migrations.memberships import GrantMembership, grant_membership  # noqa: PLC0415
    from scripts.devstack.seed_catalog import seed_catalog  # noqa: PLC0415

    seed_catalog(owner_url)
    sub = uuid.uuid4()
    email = "viewer@bench.example.com"
    request = GrantMembership(
        tenant_slug="bench", tenant_name="Bench", cognito_sub=sub, email=email, role="viewer"
    )
    with psycopg.connect(owner_url) as conn, conn.transaction():
        granted = grant_membership(conn, request)
    return {"sub": str(sub), "email": email, "custom:tenant_id": str(granted.tenant_id)}


@contextmanager
def local_api() -> Iterator[dict[str, str]]:
    """Embedded PostgreSQL migrated by the migration Lambda, moto, and a seeded viewer."""
    with local_stack() as owner_url:
        yield _seed(owner_url)


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


def get_request(claims: dict[str, str], path: str) -> tuple[Handler, dict[str, Any]]:
    """The handler serving ``GET path`` and an event for it, as the local gateway builds it."""
    from lambdas.shared.routes import route_for_key  # noqa: PLC0415
    from scripts.devstack.gateway import build_event  # noqa: PLC0415

    route = route_for_key(f"GET {path}")
    if route is None:
        raise LookupError(path)
    handler: Handler = importlib.import_module(f"lambdas.{route.group}.handler").lambda_handler
    event = build_event(
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
    return handler, event


def seed_approvals(
    owner_url: str, counts: dict[str, int]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A tenant with a requesting member and a deciding admin (through the product's membership
    writer), and ``counts[kind]`` pending requests of each kind asked by the member. Returns the
    admin's JWT claims and the request ids by kind."""
    import psycopg  # noqa: PLC0415

    from lambdas.migrations.memberships import GrantMembership, grant_membership  # noqa: PLC0415

    slug = f"decide-{uuid.uuid4().hex[:8]}"
    users: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    with psycopg.connect(owner_url) as conn, conn.transaction():
        for role in ("member", "admin"):
            sub = uuid.uuid4()
            granted = grant_membership(
                conn,
                GrantMembership(
                    tenant_slug=slug,
                    tenant_name="Bench decisions",
                    cognito_sub=sub,
                    email=f"{role}@{slug}.example.com",
                    role=role,
                ),
            )
            users[role] = (sub, granted.user_id)
        requests: dict[str, list[str]] = {}
        for kind, count in counts.items():
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
                (granted.tenant_id, kind, users["member"][1], QUORUM[kind], count),
            ).fetchall()
            requests[kind] = [str(row[0]) for row in rows]
    claims = {
        "sub": str(users["admin"][0]),
        "email": f"admin@{slug}.example.com",
        "custom:tenant_id": str(granted.tenant_id),
    }
    return claims, requests


def decision_event(claims: dict[str, str], approval_id: str) -> dict[str, Any]:
    """The event of ``POST /api/approvals/{approval_id}/decisions``, as the gateway builds it."""
    from lambdas.shared.routes import route_for_key  # noqa: PLC0415
    from scripts.devstack.gateway import build_event  # noqa: PLC0415

    route = route_for_key(DECISION_ROUTE)
    if route is None:
        raise LookupError("the decision route is not in the route table")
    return build_event(
        route=route,
        method="POST",
        url_path=f"/api/approvals/{approval_id}/decisions",
        query="",
        headers={"host": "127.0.0.1", "content-type": "application/json"},
        body=json.dumps({"decision": "approved", "reason": "checked"}).encode(),
        path_params={"approval_id": approval_id},
        claims=claims,
        request_id=str(uuid.uuid4()),
        source_ip="127.0.0.1",
    )


def backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a local process (the handler's PostgreSQL backend)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(
    calls: Iterator[Callable[[], Any]], *, requests: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of ``requests`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        next(calls)()
    wall, cpu = [], []
    for _ in range(requests):
        call = next(calls)
        started, cpu_started = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return wall, cpu


def _checked(handler: Handler, event: dict[str, Any], context: Any, want: str | None) -> None:
    answer = handler(event, context)
    if answer["statusCode"] != 200 or (
        want is not None and json.loads(answer["body"])["status"] != want
    ):
        raise SystemExit(f"the request answered {answer['statusCode']}: {answer['body']}")


def serve(owner_url: str, answers: IO[str]) -> None:
    from lambdas.shared.runtime import get_runtime  # noqa: PLC0415
    from scripts.devstack.gateway import LambdaContextStub  # noqa: PLC0415

    claims = _seed(owner_url)
    context = LambdaContextStub(function_name="bench")
    requests: dict[str, tuple[Handler, dict[str, Any]]] = {}
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        if "decide" in ask:
            kind = ask["decide"]
            count = ask["requests"] + ask["warmup"]
            admin, ids = seed_approvals(owner_url, {kind: count})
            handler = importlib.import_module("lambdas.approvals.handler").lambda_handler
            events = iter([decision_event(admin, approval_id) for approval_id in ids[kind]])
            calls = (partial(_checked, handler, event, context, kind) for event in events)
            for _ in range(ask["warmup"]):
                next(calls)()
            backend = int(get_runtime().database.connection().info.backend_pid)
            started = backend_cpu_s(backend)
            wall, cpu = timed(calls, requests=ask["requests"], warmup=0)
            per_decision = (backend_cpu_s(backend) - started) * 1000 / ask["requests"]
            answer = {"samples_ms": wall, "cpu_ms": cpu, "backend_cpu_ms": per_decision}
        else:
            if ask["path"] not in requests:
                requests[ask["path"]] = get_request(claims, ask["path"])
            handler, event = requests[ask["path"]]
            call = partial(_checked, handler, event, context, None)
            call()
            wall, cpu = timed(
                itertools.repeat(call), requests=ask["requests"], warmup=ask["warmup"]
            )
            answer = {"samples_ms": wall, "cpu_ms": cpu}
        print(json.dumps(answer), file=answers, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--code", type=Path, required=True, help="checkout whose code to measure")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.code.resolve()))
    warnings.filterwarnings("ignore", "No application metrics to publish")
    # the answers keep the real stdout; whatever else prints (the Lambdas' JSON logs) goes to
    # stderr, so it cannot be taken for an answer
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with local_stack() as owner_url:
        serve(owner_url, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
