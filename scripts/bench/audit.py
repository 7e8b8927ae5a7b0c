"""Benchmark the audit chain: the latency an append adds to ``POST /api/agents/{id}/activate``,
appends (one tenant, serialised by design; 8 tenants in parallel), the latency an append adds
to a bare write transaction, and verification speed.

Side by side in one run, alternating so that the machine's load falls on both sides alike:

- the activate route (``lambdas.agents.handler.lambda_handler`` in-process, a payload v2.0
  event, embedded PostgreSQL migrated by the migration Lambda, moto for the secrets) recording
  its change with the request scope's change writer (the audit row and the outbox event in one
  statement), with a change writer that emits the event alone, and as before (``audit_append_v2``
  as a statement of its own, then the event), on one database and one connection; each timed
  activation is followed by an untimed deactivation, so every one writes;
- a write transaction (BEGIN + tenant scope + UPDATE, the change's statement(s), COMMIT) in the
  same three variants, and the append's execution inside PostgreSQL (EXPLAIN ANALYZE,
  ``audit_append_v2`` and ``v3``);
- verification by one COPY stream and in parallel seq ranges, one process each
  (``lambdas.audit.service.verify_tenant_chain``).

The machine is shared: the load average and a calibration loop (a fixed 3M-step Python loop,
CPU ms) are printed next to the numbers, and verification is also given per CPU-second.

Targets: an append adds <= 0.5 ms at p50 to the activate route; verify >= 50,000 rows/s.

  uv run python scripts/bench/audit.py                      # embedded PostgreSQL in a temp dir
  uv run python scripts/bench/audit.py --only activate      # the route alone
  uv run python scripts/bench/audit.py --write docs/benchmarks.md   # keeps its analysis
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.audit import service  # noqa: E402
from lambdas.audit.repository import AuditRepository  # noqa: E402
from lambdas.migrations.roles import RuntimeRole  # noqa: E402
from lambdas.migrations.runner import MigrationRunner  # noqa: E402
from lambdas.shared import audit as audit_module  # noqa: E402
from lambdas.shared.audit import AuditRow, AuditWriter, verify_chain  # noqa: E402
from lambdas.shared.constants import resource_names  # noqa: E402
from lambdas.shared.db import set_tenant  # noqa: E402
from lambdas.shared.events import validated_payload  # noqa: E402
from lambdas.shared.migration_files import MIGRATIONS_DIR  # noqa: E402
from lambdas.shared.scope import Outbox, Writers  # noqa: E402
from scripts.bench.support import write_section  # noqa: E402
from scripts.devstack.postgres import ConnectionInfo, EmbeddedPostgres, free_port  # noqa: E402

SECTION_TITLE = "## Audit chain"
VERIFY_TARGET_ROWS_S = 50_000
ADDED_P50_TARGET_MS = 0.5
PARALLEL_TENANTS = 8
RUNTIME_PASSWORD = uuid.uuid4().hex
ACTIVATED_AGENT = "sdr-prospector"  # in the Professional plan of the dev catalog
ACTIVATE_PLAN = "professional"

Conn = psycopg.Connection[dict[str, Any]]


@contextmanager
def _server(url: str | None) -> Iterator[ConnectionInfo]:
    if url:
        params = psycopg.conninfo.conninfo_to_dict(url)
        yield ConnectionInfo(
            str(params.get("host", "127.0.0.1")),
            int(str(params.get("port") or 5432)),
            str(params.get("user", "postgres")),
            str(params.get("password", "")),
        )
        return
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp), port=free_port(), ephemeral=True)
        server.start()
        try:
            yield server.connection
        finally:
            server.destroy()


@contextmanager
def _database(
    server: ConnectionInfo, directory: Path = MIGRATIONS_DIR
) -> Iterator[tuple[str, str]]:
    """A database migrated with ``directory``'s migrations: (owner URL, runtime-role URL)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        role = resource_names("dev").runtime_db_role
        report = MigrationRunner(
            server.url(name),
            runtime_role=RuntimeRole(role, RUNTIME_PASSWORD),
            directory=directory,
        ).apply()
        if not report.ok:
            raise RuntimeError(f"migration failed: {report.error}")
        runtime = psycopg.conninfo.make_conninfo(
            server.url(name), user=role, password=RUNTIME_PASSWORD
        )
        yield server.url(name), runtime
    finally:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tenants(owner_url: str, count: int) -> list[uuid.UUID]:
    with psycopg.connect(owner_url, autocommit=True) as conn:
        return [
            conn.execute(
                "INSERT INTO alquimista_platform.tenants (slug, name) VALUES (%s, %s) RETURNING id",
                (f"bench-{i}-{uuid.uuid4().hex[:8]}", f"Bench {i}"),
            ).fetchone()[0]  # type: ignore[index]
            for i in range(count)
        ]


def _append_loop(runtime_url: str, tenant: uuid.UUID, count: int) -> list[float]:
    """``count`` appends, one transaction each; the latency of each transaction (ms)."""
    latencies: list[float] = []
    with psycopg.connect(runtime_url, row_factory=dict_row) as conn:
        writer = AuditWriter(conn, tenant_id=tenant, actor_id=uuid.uuid4(), request_id="bench")
        for i in range(count):
            started = time.perf_counter()
            with conn.pipeline():
                set_tenant(conn, tenant)
                writer.append(
                    "bench.appended",
                    resource_type="bench",
                    resource_id=str(i),
                    details={"n": i, "ref_id": str(uuid.uuid4())},
                )
            conn.commit()
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _parallel(runtime_url: str, tenants: list[uuid.UUID], count: int) -> float:
    """Appends per second with one thread (and connection) per tenant."""
    start = threading.Barrier(len(tenants) + 1)

    def worker(tenant: uuid.UUID) -> None:
        start.wait()
        _append_loop(runtime_url, tenant, count)

    threads = [threading.Thread(target=worker, args=(t,)) for t in tenants]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(tenants) * count / (time.perf_counter() - started)


# The activate route's variants: the change recorded as its outbox event alone ("without"), as
# its audit row and event in one statement ("with": ChangeWriter, audit_append_v3), and as the
# previous path did it ("v2": audit_append_v2 as a statement of its own, then the event).
ADDED_VARIANTS = ("without", "with", "v2")

# what the audit writers send (lambdas/shared/audit.py; v2 is the previous append)
APPEND_SQL = {
    version: (
        "SELECT id, seq, row_hash, occurred_at"
        f" FROM alquimista_platform.audit_append_{version}(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    for version in ("v2", "v3")
}
EVENT_SQL = "SELECT alquimista_platform.outbox_append_v1(%s, %s, %s, %s, %s, %s, %s) AS seq"
RECORD_SQL: str = audit_module.RECORD_QUERY


def _append_params(tenant: uuid.UUID, actor: uuid.UUID, i: int) -> tuple[Any, ...]:
    return (
        tenant,
        actor,
        "user",
        "notification.updated",
        "notification",
        None,
        "success",
        "bench",
        Jsonb({"n": i}),
    )


def _event_params(tenant: uuid.UUID, i: int) -> tuple[Any, ...]:
    return (
        uuid.uuid4(),
        tenant,
        "notification",
        "bench",
        "notification.updated",
        1,
        Jsonb({"n": i}),
    )


def _record_params(tenant: uuid.UUID, actor: uuid.UUID, i: int) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "tenant": tenant,
        "actor": actor,
        "actor_type": "user",
        "event_type": "notification.updated",
        "aggregate_type": "notification",
        "aggregate_id": "bench",
        "version": 1,
        "request": "bench",
        "payload": Jsonb({"n": i}),
    }


def _write_transaction(
    conn: Conn, tenant: uuid.UUID, actor: uuid.UUID, variant: str, i: int
) -> None:
    """A write transaction as a request's scope runs it (autocommit connection, BEGIN + tenant
    scope + UPDATE pipelined, then the change's record, then COMMIT). ``variant``: "without"
    the audit row (the event's statement alone), "with" the row and the event in one statement
    (what ``ChangeWriter.record`` sends), "v2": ``audit_append_v2`` as a statement of its own
    and then the event's (the previous path)."""
    with conn.pipeline():
        conn.execute("BEGIN", prepare=False)
        set_tenant(conn, tenant)
        conn.execute(
            "UPDATE alquimista_platform.notifications SET body = %s WHERE tenant_id = %s",
            (str(i), tenant),
        )
    if variant == "with":
        row = conn.execute(RECORD_SQL, _record_params(tenant, actor, i)).fetchone()
    elif variant == "v2":
        if conn.execute(APPEND_SQL["v2"], _append_params(tenant, actor, i)).fetchone() is None:
            raise LookupError("audit_append_v2 returned no row")
        row = conn.execute(EVENT_SQL, _event_params(tenant, i)).fetchone()
    else:
        row = conn.execute(EVENT_SQL, _event_params(tenant, i)).fetchone()
    if row is None:
        raise LookupError("the change's statement returned no row")
    conn.commit()


WRITE_VARIANTS = ADDED_VARIANTS


def _rotations(variants: tuple[str, ...], i: int) -> tuple[str, ...]:
    """Round ``i``'s order: forwards and backwards in turn (ABC CBA), each starting point in
    turn, so no variant always follows the same one."""
    shift = (i // 2) % len(variants)
    order = variants[shift:] + variants[:shift]
    return order if i % 2 == 0 else order[::-1]


def _added_latency(runtime_url: str, tenant: uuid.UUID, rounds: int) -> dict[str, float]:
    """p50 (ms) of a write transaction per variant (``_write_transaction``), the variants
    alternating within each round; also the client's CPU per transaction (ms), which the
    machine's load does not inflate much."""
    times: dict[str, list[float]] = {variant: [] for variant in WRITE_VARIANTS}
    cpu: dict[str, float] = dict.fromkeys(WRITE_VARIANTS, 0.0)
    actor = uuid.uuid4()
    with psycopg.connect(runtime_url, row_factory=dict_row, autocommit=True) as conn:
        with conn.transaction():
            set_tenant(conn, tenant)
            conn.execute(
                "INSERT INTO alquimista_platform.notifications (tenant_id, kind, title)"
                " VALUES (%s, 'bench', 'bench')",
                (tenant,),
            )
        for i in range(rounds):
            for variant in _rotations(WRITE_VARIANTS, i):
                cpu_started = time.process_time()
                started = time.perf_counter()
                _write_transaction(conn, tenant, actor, variant, i)
                times[variant].append((time.perf_counter() - started) * 1000)
                cpu[variant] += time.process_time() - cpu_started
    medians = {variant: statistics.median(values) for variant, values in times.items()}
    return medians | {f"{v}_cpu": cpu[v] * 1000 / rounds for v in WRITE_VARIANTS}


class _NoAudit:
    """The audit writer of the "without" side: the route runs as it does, and appends nothing."""

    def append(self, action: str, **_: Any) -> None:
        return None


class _EventOnly:
    """The change writer of the "without" side: the change's outbox event alone (validated once,
    one statement), as ``ChangeWriter.record`` sends it with the audit row."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def record(self, event_type: str, **event: Any) -> None:
        self._outbox.emit(event_type, **event)


class _PreviousChangePath:
    """The change writer of the "v2" side: the path before ``ChangeWriter`` (migration 057), the
    audit row through ``audit_append_v2`` in a statement of its own, then the outbox event."""

    def __init__(self, audit: AuditWriter, outbox: Outbox) -> None:
        self._audit = audit
        self._outbox = outbox

    def record(
        self, event_type: str, *, aggregate_type: str, aggregate_id: str, **event: Any
    ) -> None:
        data = validated_payload(event_type, 1, aggregate_type, event["payload"])
        self._audit.append(
            event_type, resource_type=aggregate_type, resource_id=aggregate_id, details=data
        )
        self._outbox.emit(
            event_type, aggregate_type=aggregate_type, aggregate_id=aggregate_id, payload=data
        )


class _AuditWriterV2(AuditWriter):
    """The previous audit writer: ``audit_append_v2``, a statement of its own."""

    def append(
        self,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> Any:
        params = (
            self._tenant_id,
            self._actor_id,
            self._actor_type,
            action,
            resource_type,
            resource_id,
            outcome,
            self._request_id,
            Jsonb(dict(details or {})),
        )
        row = self._conn.cursor(row_factory=tuple_row).execute(APPEND_SQL["v2"], params)
        if row.fetchone() is None:
            raise LookupError("audit_append_v2 returned no row")


def _variant_writers() -> dict[str, Writers]:
    from lambdas.shared.runtime import WRITERS  # noqa: PLC0415

    outbox = WRITERS.outbox
    if outbox is None:
        raise LookupError("no outbox writer is registered")

    def v2(conn: Any, scope: Any) -> AuditWriter:
        return _AuditWriterV2(
            conn,
            tenant_id=scope.tenant_id,
            actor_id=scope.actor_id,
            actor_type=scope.actor_type,
            request_id=scope.request_id,
        )

    return {
        "with": WRITERS,
        "without": Writers(
            audit=lambda conn, scope: _NoAudit(),
            outbox=outbox,
            changes=lambda conn, scope: _EventOnly(outbox(conn, scope)),
        ),
        "v2": Writers(
            audit=v2,
            outbox=outbox,
            changes=lambda conn, scope: _PreviousChangePath(v2(conn, scope), outbox(conn, scope)),
        ),
    }


def _seed_admin(owner_url: str) -> dict[str, str]:
    """The dev catalog, a tenant subscribed to ACTIVATE_PLAN and its admin (through the
    product's own writers); the admin's JWT claims."""
    from lambdas.migrations.memberships import GrantMembership, grant_membership  # noqa: PLC0415
    from scripts.devstack.seed_catalog import (  # noqa: PLC0415
        find_plan,
        insert_subscription,
        seed_catalog,
    )

    seed_catalog(owner_url)
    sub = uuid.uuid4()
    email = "admin@bench.example.com"
    request = GrantMembership(
        tenant_slug="bench-activate",
        tenant_name="Bench activate",
        cognito_sub=sub,
        email=email,
        role="admin",
    )
    with psycopg.connect(owner_url) as conn, conn.transaction():
        granted = grant_membership(conn, request)
        insert_subscription(conn, granted.tenant_id, find_plan(ACTIVATE_PLAN))
    return {"sub": str(sub), "email": email, "custom:tenant_id": str(granted.tenant_id)}


def _post(claims: dict[str, str], path: str, route_key: str, agent: str) -> dict[str, Any]:
    from lambdas.shared.routes import route_for_key  # noqa: PLC0415
    from scripts.devstack.gateway import build_event  # noqa: PLC0415

    route = route_for_key(route_key)
    if route is None:
        raise LookupError(route_key)
    return build_event(
        route=route,
        method="POST",
        url_path=path,
        query="",
        headers={"host": "127.0.0.1"},
        body=b"",
        path_params={"agent_id": agent},
        claims=claims,
        request_id=str(uuid.uuid4()),
        source_ip="127.0.0.1",
    )


def _measure_activate(
    owner_url: str, claims: dict[str, str], rounds: int, warmup: int
) -> dict[str, Any]:
    """p50 (ms) of POST /api/agents/{id}/activate with the audit writer and without; the two
    alternate (ABBA within each pair of rounds). An untimed deactivation follows each
    activation, so each one writes (an active agent's activation is a no-op)."""
    from lambdas.shared.runtime import WRITERS, get_runtime  # noqa: PLC0415
    from scripts.devstack.gateway import LambdaContextStub  # noqa: PLC0415
    from scripts.devstack.seed_catalog import find_agent  # noqa: PLC0415

    handler = importlib.import_module("lambdas.agents.handler").lambda_handler
    context = LambdaContextStub(function_name="bench")
    agent = str(find_agent(ACTIVATED_AGENT).id)
    activate = _post(
        claims, f"/api/agents/{agent}/activate", "POST /api/agents/{agent_id}/activate", agent
    )
    deactivate = _post(
        claims, f"/api/agents/{agent}/deactivate", "POST /api/agents/{agent_id}/deactivate", agent
    )
    runtime = get_runtime()
    variants = _variant_writers()
    times: dict[str, list[float]] = {variant: [] for variant in ADDED_VARIANTS}
    cpu: dict[str, float] = dict.fromkeys(ADDED_VARIANTS, 0.0)
    counts: dict[str, int] = dict.fromkeys(ADDED_VARIANTS, 0)

    def once(variant: str, timed: bool) -> None:
        runtime.writers = variants[variant]
        cpu_started = time.process_time()
        started = time.perf_counter()
        answer = handler(activate, context)
        elapsed = (time.perf_counter() - started) * 1000
        cpu_used = time.process_time() - cpu_started
        runtime.writers = WRITERS
        if answer["statusCode"] != 200:
            raise SystemExit(f"activate answered {answer['statusCode']}: {answer}")
        if handler(deactivate, context)["statusCode"] != 200:
            raise SystemExit("deactivate failed")
        counts[variant] += 1
        if timed:
            times[variant].append(elapsed)
            cpu[variant] += cpu_used

    def activations_recorded() -> int:
        with psycopg.connect(owner_url) as conn:
            set_tenant(conn, uuid.UUID(claims["custom:tenant_id"]))
            row = conn.execute(
                "SELECT count(*) FROM alquimista_platform.audit_logs"
                " WHERE action = 'agent.activated'"
            ).fetchone()
        return int(row[0]) if row else 0

    recorded_before = activations_recorded()
    for i in range(warmup):
        once(ADDED_VARIANTS[i % len(ADDED_VARIANTS)], timed=False)
    for i in range(rounds):
        for variant in _rotations(ADDED_VARIANTS, i):
            once(variant, timed=True)
    recorded = activations_recorded() - recorded_before
    audited = counts["with"] + counts["v2"]
    if recorded != audited:  # the "without" side must have written no audit row
        raise SystemExit(f"{recorded} activation audit rows for {audited} audited calls")
    medians = {variant: statistics.median(values) for variant, values in times.items()}
    return (
        medians
        | {f"{v}_p90": statistics.quantiles(times[v], n=10)[8] for v in ADDED_VARIANTS}
        | {f"{v}_cpu": cpu[v] * 1000 / rounds for v in ADDED_VARIANTS}
    )


def _activate_latency(
    server: ConnectionInfo, *, rounds: int, repeats: int, warmup: int
) -> list[tuple[dict[str, Any], float, float]]:
    """The activate route with and without the append, ``repeats`` times in one database made
    as the local stack makes it (the migration Lambda under moto); each with the load average
    and the calibration loop measured right after it."""
    from moto import mock_aws  # noqa: PLC0415

    from lambdas.shared.runtime import reset_runtime  # noqa: PLC0415
    from scripts.devstack.stack import (  # noqa: PLC0415
        LOCAL_AWS_ENV,
        QUIET_POWERTOOLS_ENV,
        environment,
        provision_and_migrate,
    )

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    quiet = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    warnings.filterwarnings("ignore", "No application metrics to publish")
    try:
        with environment({**LOCAL_AWS_ENV, **QUIET_POWERTOOLS_ENV, **quiet}), mock_aws():
            provision_and_migrate("dev", server, dbname=name)
            claims = _seed_admin(server.url(name))
            return [
                (
                    _measure_activate(server.url(name), claims, rounds, warmup),
                    os.getloadavg()[0],
                    calibration_ms(),
                )
                for _ in range(repeats)
            ]
    finally:
        reset_runtime()
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def calibration_ms() -> float:
    """CPU ms of a fixed 3M-step Python loop: how fast the machine is right now (123-146 ms on
    quiet days here, about 300 ms loaded)."""
    started = time.process_time()
    sum(i * i for i in range(3_000_000))
    return (time.process_time() - started) * 1000


def _server_execution(
    runtime_url: str, tenant: uuid.UUID, rounds: int
) -> dict[str, tuple[float, float]]:
    """min and p50 (ms) of an append inside PostgreSQL (EXPLAIN ANALYZE), which leaves out the
    client, the network and the scheduler of a loaded machine: ``audit_append_v2`` and ``v3``
    alternating, each in a transaction of its own (as a request appends)."""
    times: dict[str, list[float]] = {version: [] for version in APPEND_SQL}
    with psycopg.connect(runtime_url) as conn:
        for i in range(rounds):
            for version in _rotations(tuple(APPEND_SQL), i):
                set_tenant(conn, tenant)
                plan = conn.execute(
                    f"EXPLAIN (ANALYZE, TIMING OFF) {APPEND_SQL[version]}",
                    (
                        tenant,
                        None,
                        "user",
                        "bench.explained",
                        "bench",
                        str(i),
                        "success",
                        "bench",
                        Jsonb({"n": i, "ref_id": str(uuid.uuid4())}),
                    ),
                ).fetchall()
                conn.commit()
                line = next(row[0] for row in plan if row[0].startswith("Execution Time"))
                times[version].append(float(line.split()[2]))
    return {v: (min(t), statistics.median(t)) for v, t in times.items()}


def _fill(owner_url: str, tenant: uuid.UUID, rows: int, batch: int = 1000) -> None:
    """A long chain, ``batch`` appends per transaction (in one transaction the head row's
    versions pile up, and each append would walk them all)."""
    with psycopg.connect(owner_url) as conn:
        for first in range(1, rows + 1, batch):
            set_tenant(conn, tenant)
            conn.execute(
                """
                SELECT count(*) FROM generate_series(%s::int, %s::int) AS n,
                LATERAL alquimista_platform.audit_append_v3(
                    %s, NULL, 'system', 'bench.filled', 'bench', n::text, 'success', 'bench',
                    jsonb_build_object('n', n, 'ref_id', gen_random_uuid()::text))
                """,
                (first, min(first + batch - 1, rows), tenant),
            )
            conn.commit()


# The previous verifier's stream: every column decoded by psycopg from a server-side cursor.
_ROW_STREAM_SQL = """
    SELECT id::text, tenant_id::text, seq, occurred_at, actor_user_id::text, actor_type, action,
           resource_type, resource_id, outcome, request_id, metadata, prev_hash, payload_hash,
           row_hash, hash_version
    FROM alquimista_platform.audit_logs WHERE tenant_id = %s ORDER BY seq
"""


def _row_stream(conn: Conn, tenant: uuid.UUID) -> Iterator[AuditRow]:
    with conn.cursor(name="bench_rows", binary=True) as cursor:
        cursor.itersize = 5_000
        cursor.execute(_ROW_STREAM_SQL, (tenant,))
        for row in cursor:
            yield AuditRow(*row.values())


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of a local PostgreSQL backend, or None if not readable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Uow:
    def __init__(self, log: AuditRepository) -> None:
        self.log = log
        self.heads = None


def _verify_rate(runtime_url: str, tenant: uuid.UUID, *, kind: str) -> dict[str, float]:
    """Rows per wall second of one verify, and per CPU-second (this process, its children and,
    for one stream, its backend, read from /proc when the server is local). ``kind``: "rows"
    (the server-side cursor), "copy" (one COPY stream) or "ranges:K" (the service, K ranges)."""
    with psycopg.connect(runtime_url, row_factory=dict_row) as conn:
        set_tenant(conn, tenant)
        backend = _backend_cpu(conn.info.backend_pid)
        cpu = time.process_time()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        if kind.startswith("ranges:"):
            log = AuditRepository(conn, tenant)

            @contextmanager
            def uow() -> Iterator[_Uow]:
                yield _Uow(log)

            response = service.verify_tenant_chain(
                uow,  # type: ignore[arg-type]
                None,
                workers=int(kind.partition(":")[2]),
                min_range_rows=1000,
            )
            ok, checked = response.ok, response.checked
        else:
            rows = (
                AuditRepository(conn, tenant).stream()
                if kind == "copy"
                else _row_stream(conn, tenant)
            )
            result = verify_chain(rows)
            ok, checked = result.ok, result.checked
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = time.process_time() - cpu
        client_cpu += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        backend_after = _backend_cpu(conn.info.backend_pid)
        conn.rollback()
    if not ok:
        raise RuntimeError(f"the benchmark chain does not verify ({kind})")
    server_cpu = backend_after - backend if backend is not None and backend_after else 0.0
    return {
        "rows": checked,
        "rate": checked / elapsed,
        "client_cpu_rate": checked / client_cpu,
        "cpu_rate": checked / (client_cpu + server_cpu),
    }


def _best(values: list[dict[str, float]], key: str) -> dict[str, float]:
    return max(values, key=lambda v: v[key])


VERIFY_KINDS = ("copy", "ranges:2", "ranges:4")


def run(
    server: ConnectionInfo, *, appends: int, verify_rows: int, repeats: int, only: str | None
) -> dict[str, Any]:
    load_before = os.getloadavg()
    results: dict[str, Any] = {"calibration": [calibration_ms()]}
    if only in (None, "activate"):
        results["activate"] = _activate_latency(
            server, rounds=max(appends // 4, 100), repeats=repeats, warmup=30
        )
    if only == "activate":
        results["load"] = (load_before, os.getloadavg())
        results["calibration"].append(calibration_ms())
        return results
    with _database(server) as (owner_url, runtime_url):
        tenants = _tenants(owner_url, PARALLEL_TENANTS + 2)
        if only in (None, "append"):
            _append_loop(runtime_url, tenants[0], 50)  # warm-up
            started = time.perf_counter()
            latencies = _append_loop(runtime_url, tenants[0], appends)
            results["single_rate"] = appends / (time.perf_counter() - started)
            results["single_p50_ms"] = statistics.median(latencies)
            results["single_p99_ms"] = statistics.quantiles(latencies, n=100)[98]
            results["parallel_rate"] = _parallel(
                runtime_url, tenants[1 : PARALLEL_TENANTS + 1], appends // 2
            )
            rounds = max(appends // 4, 200)
            results["added"] = [
                (
                    _added_latency(runtime_url, tenants[0], rounds),
                    os.getloadavg()[0],
                    calibration_ms(),
                )
                for _ in range(repeats)
            ]
            results["server"] = _server_execution(runtime_url, tenants[0], 300)
        if only in (None, "verify"):
            _fill(owner_url, tenants[-1], verify_rows)
            verify: dict[str, list[dict[str, float]]] = {kind: [] for kind in VERIFY_KINDS}
            for _ in range(repeats):
                for kind in VERIFY_KINDS:
                    rate = _verify_rate(runtime_url, tenants[-1], kind=kind)
                    verify[kind].append({**rate, "load": os.getloadavg()[0]})
            results["verify"] = verify
    results["load"] = (load_before, os.getloadavg())
    results["calibration"].append(calibration_ms())
    return results


def _verify_cell(runs: list[dict[str, float]]) -> str:
    rates = ", ".join(f"{r['rate']:,.0f} (load {r['load']:.1f})" for r in runs)
    best = _best(runs, "rate")
    return (
        f"{rates} rows/s; best {best['rate']:,.0f}; per CPU-second of the verifying "
        f"processes: {_best(runs, 'client_cpu_rate')['client_cpu_rate']:,.0f}"
    )


def render(results: dict[str, Any], machine: str, command: str) -> str:
    (b1, b5, _), (a1, a5, _) = results["load"]
    calibration = results["calibration"]
    lines = [
        f"`{command}` (embedded PostgreSQL 18, loopback TCP, runtime role).",
        f"Machine: {machine}; load average {b1:.1f} / {b5:.1f} (1 / 5 min) at the start, "
        f"{a1:.1f} / {a5:.1f} at the end; calibration loop {calibration[0]:.0f} ms at the start, "
        f"{calibration[-1]:.0f} ms at the end (123-146 ms on the quiet runs of 2026-12-01). "
        "Each side-by-side comparison comes from this one run, alternating.",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
    ]
    if "activate" in results:
        runs = results["activate"]
        added_route = statistics.median(r["with"] - r["without"] for r, _, _ in runs)
        added_v2 = statistics.median(r["v2"] - r["without"] for r, _, _ in runs)
        met_route = "met" if added_route <= ADDED_P50_TARGET_MS else "NOT met"

        def route_cells(key: str) -> str:
            return "; ".join(
                f"{r[key]:.3f} (p90 {r[f'{key}_p90']:.3f}; load {load:.1f}, calib. {cal:.0f})"
                for r, load, cal in runs
            )

        route_cpu = "; ".join(
            f"{r['without_cpu']:.3f} / {r['with_cpu']:.3f} / {r['v2_cpu']:.3f}" for r, _, _ in runs
        )
        lines += [
            f"| `POST /api/agents/{{id}}/activate` p50 without the audit row (the event alone), per round (ms) | {route_cells('without')} | | |",  # noqa: E501
            f"| the same with the audit row and the event in one statement (`audit_append_v3` + `outbox_append_v1`), per round (ms) | {route_cells('with')} | <= +{ADDED_P50_TARGET_MS} ms (median added +{added_route:.3f}) | {met_route} |",  # noqa: E501
            f"| the same as before: `audit_append_v2` as a statement of its own, then the event, per round (ms) | {route_cells('v2')} | (median added +{added_v2:.3f}) | |",  # noqa: E501
            f"| client CPU per activate without / with / before (v2), per round (ms) | {route_cpu} | | |",  # noqa: E501
        ]  # fmt: skip
    if "added" in results:
        rounds = results["added"]
        added_one = statistics.median(r["with"] - r["without"] for r, _, _ in rounds)
        added_v2 = statistics.median(r["v2"] - r["without"] for r, _, _ in rounds)
        cells = "; ".join(
            f"{r['without']:.3f} / {r['with']:.3f} / {r['v2']:.3f}"
            f" (load {load:.1f}, calib. {cal:.0f})"
            for r, load, cal in rounds
        )
        cpu = "; ".join(
            f"{r['without_cpu']:.3f} / {r['with_cpu']:.3f} / {r['v2_cpu']:.3f}"
            for r, _, _ in rounds
        )
        server = results["server"]
        lines += [
            f"| appends, one tenant, one connection (serialised by the head lock) | {results['single_rate']:,.0f}/s (p50 {results['single_p50_ms']:.2f} ms, p99 {results['single_p99_ms']:.2f} ms) | | |",  # noqa: E501
            f"| appends, {PARALLEL_TENANTS} tenants in parallel (a thread and connection each) | {results['parallel_rate']:,.0f}/s | | |",  # noqa: E501
            f"| write transaction p50 without the audit row (the event alone) / with it in the event's statement / before (`audit_append_v2` on its own, then the event), per round (ms) | {cells} | median added +{added_one:.3f} (one statement), +{added_v2:.3f} (before) | |",  # noqa: E501
            f"| client CPU per write transaction without / with / before, per round (ms) | {cpu} | | |",  # noqa: E501
            f"| append execution inside PostgreSQL (EXPLAIN ANALYZE, alternating), min / p50: `audit_append_v2`; `audit_append_v3` | {server['v2'][0]:.3f} / {server['v2'][1]:.3f} ms; {server['v3'][0]:.3f} / {server['v3'][1]:.3f} ms | | |",  # noqa: E501
        ]  # fmt: skip
    if "verify" in results:
        verify = results["verify"]
        rows = verify["copy"][0]["rows"]
        best = max(_best(runs, "rate")["rate"] for kind, runs in verify.items() if kind != "copy")
        met = "met" if best >= VERIFY_TARGET_ROWS_S else "NOT met"
        lines.append(
            f"| before: verify, one COPY stream, {rows:,} rows, wall clock | "
            f"{_verify_cell(verify['copy'])} | | |"
        )
        for kind in VERIFY_KINDS[1:]:
            parts = kind.partition(":")[2]
            target = f">= {VERIFY_TARGET_ROWS_S:,} rows/s" if kind == VERIFY_KINDS[1] else ""
            lines.append(
                f"| after: verify in {parts} seq ranges, a process each, wall clock | "
                f"{_verify_cell(verify[kind])} | {target} | {met if target else ''} |"
            )
    return f"{SECTION_TITLE}\n\n" + "\n".join(lines) + "\n" + HOW


HOW = """
Activate: `POST /api/agents/{id}/activate` through `lambdas.agents.handler.lambda_handler`
in-process (a payload v2.0 event as the local gateway builds it; the JWT authorizer's claims of a
tenant admin whose tenant's plan covers the agent; the membership lookup, the entitlement, the
policy gate's evaluation row, the activation writer, the change's record and COMMIT, as in
production). "With" is the request scope's change writer (`UnitOfWork.record` ->
`ChangeWriter.record`: the audit row and the outbox event in one statement, `audit_append_v3`
and `outbox_append_v1`); "without" registers a change writer that emits the event alone (the
same statement count, the payload validated once), so the difference is the audit row; "before
(v2)" is the previous path (`audit_append_v2` as a statement of its own, then the event's). The
three alternate (ABC CBA, each starting point in turn), each activation followed by an untimed
deactivation, and the run checks that exactly the audited activations left an audit row.
"Added" is the median over rounds of the p50 difference. Client CPU is this process's CPU per
request (the kernel's loopback work for a send counts as the sender's).

Write transaction: BEGIN + tenant scope + an UPDATE pipelined, then the change's statement(s),
then COMMIT: the event alone, the audit row and the event in one statement (what
`ChangeWriter.record` sends) or `audit_append_v2` on its own and then the event, alternating;
EXPLAIN ANALYZE gives the append's execution inside PostgreSQL alone, v2 and v3 alternating.

Verification: `verify_tenant_chain` splits a chain of at least 2 x 25,000 rows into one
contiguous seq range per available core; each range is verified in a forked process on its own
connection, in the snapshot the verifying transaction exports, starting from the stored hash of
the row before it (read in that snapshot). The previous range checks that row as its last, so
every range but the last must reach its end, and the first fault in seq order is the chain's.
Rows/s are wall clock; "per CPU-second" divides by the CPU time of the verifying processes
(this one and its forked children), without PostgreSQL's backends.
"""


ANALYSIS_HEADING = "### What the runs found"


def _kept_analysis(path: Path) -> str:
    """The section's written analysis (from ``ANALYSIS_HEADING`` to the next section), which a
    new run's table must not erase."""
    text = path.read_text() if path.exists() else ""
    start = text.find(SECTION_TITLE)
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(SECTION_TITLE))
    section = text[start:] if end < 0 else text[start : end + 1]
    kept = section.find(ANALYSIS_HEADING)
    return "" if kept < 0 else "\n" + section[kept:].rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=2000, help="appends per measurement")
    parser.add_argument("--verify-rows", type=int, default=200_000, help="chain length verified")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of each side-by-side measure"
    )
    parser.add_argument(
        "--only", choices=["activate", "append", "verify"], help="measure only this part"
    )
    parser.add_argument("--database-url", help="use this server (as superuser) instead")
    parser.add_argument("--write", type=Path, help="update the Audit chain section of this file")
    parser.add_argument(
        "--machine",
        default=f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}",
        help="how to describe the machine in the results",
    )
    args = parser.parse_args(argv)
    with _server(args.database_url) as server:
        results = run(
            server,
            appends=args.appends,
            verify_rows=args.verify_rows,
            repeats=args.repeats,
            only=args.only,
        )
    command = "uv run python scripts/bench/audit.py " + " ".join(argv or sys.argv[1:])
    section = render(results, args.machine, command.strip())
    print(section)
    if args.write:
        write_section(args.write, section + _kept_analysis(args.write))
    return 0


if __name__ == "__main__":
    sys.exit(main())
