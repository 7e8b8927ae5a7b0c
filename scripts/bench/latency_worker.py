"""One side of a warm-latency comparison: serve timed GETs through the route handlers of the
code in ``--code`` (this checkout, or a baseline commit's worktree) on an embedded PostgreSQL
of its own with moto for the secrets.

Standalone on purpose: it imports nothing from ``scripts.bench``, only what every commit of the
project has (``lambdas.<group>.handler.lambda_handler``, ``scripts.devstack``), so the same
worker measures old code and new alike. ``scripts/bench/api.py`` drives it over stdin/stdout,
one JSON object a line:

  -> {"ready": true}                              once the stack is up and seeded
  <- {"path": "/api/plans", "requests": 500, "warmup": 50}
  -> {"samples_ms": [...]}
"""

from __future__ import annotations

import argparse
import importlib
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
                yield _seed(server.connection.url("alquimista"))
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


def timed(fn: Callable[[], Any], *, requests: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def serve(claims: dict[str, str], answers: IO[str]) -> None:
    from scripts.devstack.gateway import LambdaContextStub  # noqa: PLC0415

    context = LambdaContextStub(function_name="bench")
    requests: dict[str, tuple[Handler, dict[str, Any]]] = {}
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        if ask["path"] not in requests:
            requests[ask["path"]] = get_request(claims, ask["path"])
        handler, event = requests[ask["path"]]
        answer = handler(event, context)
        if answer["statusCode"] != 200:
            raise SystemExit(f"GET {ask['path']} answered {answer['statusCode']}: {answer}")
        samples = timed(
            partial(handler, event, context), requests=ask["requests"], warmup=ask["warmup"]
        )
        print(json.dumps({"samples_ms": samples}), file=answers, flush=True)


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
    with local_api() as claims:
        serve(claims, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
