"""Benchmark the audit chain: appends (one tenant, serialised by design; 8 tenants in
parallel), the latency an append adds to a write transaction, and verification speed.

Every append goes through alquimista_platform.audit_append_v2 (migration 034) as the runtime
role, one transaction per append (BEGIN + tenant scope, the append, COMMIT), as a request makes
it. The same run measures v1 (migration 024) beside it, and the previous verifier's row stream
(a server-side cursor decoding every column) beside the COPY stream, so before and after share
the machine's load. The machine is shared: the load average is printed, the added latency is
measured in several alternating rounds, and verification is also given per CPU-second (the
verifier's process and its PostgreSQL backend, read from /proc when the server is local).

Targets: verify >= 50,000 rows/s; an append adds <= 0.5 ms at p50 to a write transaction.

  uv run python scripts/bench/audit.py                      # embedded PostgreSQL in a temp dir
  uv run python scripts/bench/audit.py --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.audit.repository import AuditRepository  # noqa: E402
from lambdas.migrations.roles import RuntimeRole  # noqa: E402
from lambdas.migrations.runner import MigrationRunner  # noqa: E402
from lambdas.shared.audit import AuditRow, AuditWriter, verify_chain  # noqa: E402
from lambdas.shared.constants import resource_names  # noqa: E402
from lambdas.shared.db import set_tenant  # noqa: E402
from scripts.bench.support import write_section  # noqa: E402
from scripts.devstack.postgres import ConnectionInfo, EmbeddedPostgres, free_port  # noqa: E402

SECTION_TITLE = "## Audit chain"
VERIFY_TARGET_ROWS_S = 50_000
ADDED_P50_TARGET_MS = 0.5
PARALLEL_TENANTS = 8
RUNTIME_PASSWORD = uuid.uuid4().hex

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
def _database(server: ConnectionInfo) -> Iterator[tuple[str, str]]:
    """A migrated database: (owner URL, runtime-role URL)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        role = resource_names("dev").runtime_db_role
        report = MigrationRunner(
            server.url(name), runtime_role=RuntimeRole(role, RUNTIME_PASSWORD)
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


_APPEND_SQL = """
    SELECT * FROM alquimista_platform.audit_append_{version}(
        %s, %s, 'user', 'notification.updated', 'notification', NULL, 'success', 'bench', %s)
"""


def _added_latency(
    runtime_url: str, tenant: uuid.UUID, rounds: int, version: str
) -> tuple[float, float]:
    """p50 (ms) of a write transaction without and with an append (alternating): the write
    (BEGIN + tenant scope + UPDATE pipelined), then the append as its own statement (as a
    route's unit of work sends it), then COMMIT."""
    without: list[float] = []
    with_append: list[float] = []
    statement = _APPEND_SQL.format(version=version)
    actor = uuid.uuid4()
    with psycopg.connect(runtime_url, row_factory=dict_row) as conn:
        set_tenant(conn, tenant)
        conn.execute(
            "INSERT INTO alquimista_platform.notifications (tenant_id, kind, title)"
            " VALUES (%s, 'bench', 'bench')",
            (tenant,),
        )
        conn.commit()
        for i in range(rounds):
            for target, audited in ((without, False), (with_append, True)):
                started = time.perf_counter()
                with conn.pipeline():
                    set_tenant(conn, tenant)
                    conn.execute(
                        "UPDATE alquimista_platform.notifications SET body = %s"
                        " WHERE tenant_id = %s",
                        (str(i), tenant),
                    )
                if audited:
                    conn.execute(statement, (tenant, actor, Jsonb({"n": i}))).fetchone()
                conn.commit()
                target.append((time.perf_counter() - started) * 1000)
    return statistics.median(without), statistics.median(with_append)


def _server_execution(
    runtime_url: str, tenant: uuid.UUID, rounds: int, version: str
) -> tuple[float, float]:
    """min and p50 (ms) of the append's execution inside PostgreSQL (EXPLAIN ANALYZE), which
    leaves out the client, the network and the scheduler of a loaded machine."""
    times: list[float] = []
    with psycopg.connect(runtime_url) as conn:
        for i in range(rounds):
            set_tenant(conn, tenant)
            plan = conn.execute(
                f"""
                EXPLAIN (ANALYZE, TIMING OFF)
                SELECT * FROM alquimista_platform.audit_append_{version}(
                    %s, NULL, 'user', 'bench.explained', 'bench', %s, 'success', 'bench',
                    %s::jsonb)
                """,
                (tenant, str(i), f'{{"n": {i}, "ref_id": "{uuid.uuid4()}"}}'),
            ).fetchall()
            conn.commit()
            line = next(row[0] for row in plan if row[0].startswith("Execution Time"))
            times.append(float(line.split()[2]))
    return min(times), statistics.median(times)


def _fill(owner_url: str, tenant: uuid.UUID, rows: int, batch: int = 1000) -> None:
    """A long chain, ``batch`` appends per transaction (in one transaction the head row's
    versions pile up, and each append would walk them all)."""
    with psycopg.connect(owner_url) as conn:
        for first in range(1, rows + 1, batch):
            set_tenant(conn, tenant)
            conn.execute(
                """
                SELECT count(*) FROM generate_series(%s::int, %s::int) AS n,
                LATERAL alquimista_platform.audit_append_v2(
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


def _verify_rate(runtime_url: str, tenant: uuid.UUID, *, copy: bool) -> dict[str, float]:
    """Rows per wall second and per CPU-second (this process + its backend) of one verify."""
    with psycopg.connect(runtime_url, row_factory=dict_row) as conn:
        set_tenant(conn, tenant)
        backend = _backend_cpu(conn.info.backend_pid)
        cpu = time.process_time()
        started = time.perf_counter()
        rows = AuditRepository(conn, tenant).stream() if copy else _row_stream(conn, tenant)
        result = verify_chain(rows)
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu
        backend_after = _backend_cpu(conn.info.backend_pid)
        conn.rollback()
    if not result.ok:
        raise RuntimeError(f"the benchmark chain does not verify: {result}")
    server_cpu = backend_after - backend if backend is not None and backend_after else 0.0
    return {
        "rows": result.checked,
        "rate": result.checked / elapsed,
        "client_cpu_rate": result.checked / client_cpu,
        "cpu_rate": result.checked / (client_cpu + server_cpu),
    }


def _best(values: list[dict[str, float]], key: str) -> dict[str, float]:
    return max(values, key=lambda v: v[key])


def run(server: ConnectionInfo, *, appends: int, verify_rows: int, repeats: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    with _database(server) as (owner_url, runtime_url):
        tenants = _tenants(owner_url, PARALLEL_TENANTS + 2)
        _append_loop(runtime_url, tenants[0], 50)  # warm-up
        started = time.perf_counter()
        latencies = _append_loop(runtime_url, tenants[0], appends)
        single_rate = appends / (time.perf_counter() - started)
        parallel_rate = _parallel(runtime_url, tenants[1 : PARALLEL_TENANTS + 1], appends // 2)
        added: dict[str, list[tuple[float, float]]] = {"v1": [], "v2": []}
        rounds = max(appends // 4, 200)
        for _ in range(repeats):
            for version in ("v1", "v2"):
                added[version].append(_added_latency(runtime_url, tenants[0], rounds, version))
        executions = {v: _server_execution(runtime_url, tenants[0], 300, v) for v in ("v1", "v2")}
        _fill(owner_url, tenants[-1], verify_rows)
        verify: dict[str, list[dict[str, float]]] = {"rows": [], "copy": []}
        for _ in range(repeats):
            for kind in ("rows", "copy"):
                verify[kind].append(_verify_rate(runtime_url, tenants[-1], copy=kind == "copy"))
    return {
        "load": (load_before, os.getloadavg()),
        "single_rate": single_rate,
        "single_p50_ms": statistics.median(latencies),
        "single_p99_ms": statistics.quantiles(latencies, n=100)[98],
        "parallel_rate": parallel_rate,
        "added": added,
        "server": executions,
        "verify": verify,
    }


def _verify_cell(runs: list[dict[str, float]]) -> str:
    rates = ", ".join(f"{r['rate']:,.0f}" for r in runs)
    best = _best(runs, "rate")
    return (
        f"{rates} rows/s (best {best['rate']:,.0f}); per CPU-second: "
        f"{_best(runs, 'client_cpu_rate')['client_cpu_rate']:,.0f} client, "
        f"{_best(runs, 'cpu_rate')['cpu_rate']:,.0f} client + backend"
    )


def render(results: dict[str, Any], machine: str, appends: int) -> str:
    added = {
        v: [with_ - without for without, with_ in rounds] for v, rounds in results["added"].items()
    }
    rounds_text = {
        v: "; ".join(f"{a:.3f} / {b:.3f} (+{b - a:.3f})" for a, b in results["added"][v])
        for v in ("v1", "v2")
    }
    v2_added = statistics.median(added["v2"])
    best_copy = _best(results["verify"]["copy"], "rate")["rate"]
    verify_met = "met" if best_copy >= VERIFY_TARGET_ROWS_S else "NOT met"
    added_met = "met" if v2_added <= ADDED_P50_TARGET_MS else "NOT met"
    (b1, b5, _), (a1, a5, _) = results["load"]
    rows = results["verify"]["copy"][0]["rows"]
    return f"""{SECTION_TITLE}

`uv run python scripts/bench/audit.py --appends {appends}` (embedded PostgreSQL 18, loopback
TCP, runtime role, one transaction per append: BEGIN + tenant scope + append pipelined, COMMIT).
Machine: {machine}; load average {b1:.1f} / {b5:.1f} (1 / 5 min) at the start, {a1:.1f} / {a5:.1f}
at the end. Before (v1, row stream) and after (v2, COPY stream) come from this one run.

| measure | result | target | |
|---|---|---|---|
| appends, one tenant, one connection (serialised by the head lock) | {results["single_rate"]:,.0f}/s (p50 {results["single_p50_ms"]:.2f} ms, p99 {results["single_p99_ms"]:.2f} ms) | | |
| appends, {PARALLEL_TENANTS} tenants in parallel (a thread and connection each) | {results["parallel_rate"]:,.0f}/s | | |
| before: write transaction p50 without / with a `v1` append, per round (ms) | {rounds_text["v1"]} | | |
| after: write transaction p50 without / with a `v2` append, per round (ms) | {rounds_text["v2"]} | <= +{ADDED_P50_TARGET_MS} ms (median of rounds: +{v2_added:.3f}) | {added_met} |
| append execution inside PostgreSQL (EXPLAIN ANALYZE), min / p50: v1 → v2 | {results["server"]["v1"][0]:.3f} / {results["server"]["v1"][1]:.3f} → {results["server"]["v2"][0]:.3f} / {results["server"]["v2"][1]:.3f} ms | | |
| before: verify, row stream (server-side cursor, every column decoded), {rows:,} rows | {_verify_cell(results["verify"]["rows"])} | | |
| after: verify, COPY text stream, {rows:,} rows | {_verify_cell(results["verify"]["copy"])} | >= {VERIFY_TARGET_ROWS_S:,} rows/s | {verify_met} |
"""  # noqa: E501


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=2000, help="appends per measurement")
    parser.add_argument("--verify-rows", type=int, default=200_000, help="chain length verified")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the before/after pairs")
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
            server, appends=args.appends, verify_rows=args.verify_rows, repeats=args.repeats
        )
    section = render(results, args.machine, args.appends)
    print(section)
    if args.write:
        write_section(args.write, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
