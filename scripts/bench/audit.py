"""Benchmark the audit chain: appends (one tenant, serialised by design; 8 tenants in
parallel), the latency an append adds to a write transaction, and verification speed.

Every append goes through alquimista_platform.audit_append_v2 as the runtime role, one
transaction per append (BEGIN + tenant scope, the append, COMMIT), as a request makes it.
Side by side in one run, alternating so that the machine's load falls on both: the added
latency of an append sent as a statement of its own (before) and sent with the COMMIT in one
pipelined round trip (after, ``CommitTimeAuditWriter``, what the request scope does), and
verification by one COPY stream (before) and in parallel seq ranges, one process each (after,
``lambdas.audit.service.verify_tenant_chain``). The machine is shared: the load average is
printed, and verification is also given per CPU-second where it can be read.

Targets: verify >= 50,000 rows/s (wall clock); an append adds <= 0.5 ms at p50 to a write
transaction.

  uv run python scripts/bench/audit.py                      # embedded PostgreSQL in a temp dir
  uv run python scripts/bench/audit.py --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
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

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.audit import service  # noqa: E402
from lambdas.audit.repository import AuditRepository  # noqa: E402
from lambdas.migrations.roles import RuntimeRole  # noqa: E402
from lambdas.migrations.runner import MigrationRunner  # noqa: E402
from lambdas.shared.audit import (  # noqa: E402
    AuditRow,
    AuditWriter,
    CommitTimeAuditWriter,
    verify_chain,
)
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


ADDED_VARIANTS = ("without", "statement", "with_commit")


def _added_latency(runtime_url: str, tenant: uuid.UUID, rounds: int) -> dict[str, float]:
    """p50 (ms) of a write transaction as a request's scope runs it (autocommit connection,
    BEGIN + tenant scope + UPDATE pipelined, then COMMIT): without an append, with a v2 append
    sent as a statement of its own before COMMIT, and with it sent in COMMIT's round trip.
    The three alternate within each round."""
    times: dict[str, list[float]] = {variant: [] for variant in ADDED_VARIANTS}
    cpu: dict[str, float] = dict.fromkeys(ADDED_VARIANTS, 0.0)
    actor = uuid.uuid4()
    with psycopg.connect(runtime_url, row_factory=dict_row, autocommit=True) as conn:
        with conn.transaction():
            set_tenant(conn, tenant)
            conn.execute(
                "INSERT INTO alquimista_platform.notifications (tenant_id, kind, title)"
                " VALUES (%s, 'bench', 'bench')",
                (tenant,),
            )
        writer = AuditWriter(conn, tenant_id=tenant, actor_id=actor, request_id="bench")
        for i in range(rounds):
            for variant in ADDED_VARIANTS:
                cpu_started = time.process_time()
                started = time.perf_counter()
                with conn.pipeline():
                    conn.execute("BEGIN", prepare=False)
                    set_tenant(conn, tenant)
                    conn.execute(
                        "UPDATE alquimista_platform.notifications SET body = %s"
                        " WHERE tenant_id = %s",
                        (str(i), tenant),
                    )
                details = {"n": i}
                if variant == "statement":
                    writer.append("notification.updated", resource_type="notification",
                                  details=details)  # fmt: skip
                    conn.commit()
                elif variant == "with_commit":
                    deferred = CommitTimeAuditWriter(writer)
                    deferred.append("notification.updated", resource_type="notification",
                                    details=details)  # fmt: skip
                    deferred.commit(conn)
                else:
                    conn.commit()
                times[variant].append((time.perf_counter() - started) * 1000)
                cpu[variant] += time.process_time() - cpu_started
    medians = {variant: statistics.median(values) for variant, values in times.items()}
    # the client's CPU per transaction (ms), which the machine's load does not inflate much
    return medians | {f"{v}_cpu": cpu[v] * 1000 / rounds for v in ADDED_VARIANTS}


def _server_execution(
    runtime_url: str, tenant: uuid.UUID, rounds: int, versions: tuple[str, ...]
) -> dict[str, tuple[float, float]]:
    """min and p50 (ms) of each version's append inside PostgreSQL (EXPLAIN ANALYZE), which
    leaves out the client, the network and the scheduler of a loaded machine; the versions
    alternate."""
    times: dict[str, list[float]] = {version: [] for version in versions}
    with psycopg.connect(runtime_url) as conn:
        for i in range(rounds):
            for version in versions:
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
    results: dict[str, Any] = {}
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
                (_added_latency(runtime_url, tenants[0], rounds), os.getloadavg()[0])
                for _ in range(repeats)
            ]
            results["server"] = _server_execution(runtime_url, tenants[0], 300, ("v1", "v2"))
        if only in (None, "verify"):
            _fill(owner_url, tenants[-1], verify_rows)
            verify: dict[str, list[dict[str, float]]] = {kind: [] for kind in VERIFY_KINDS}
            for _ in range(repeats):
                for kind in VERIFY_KINDS:
                    rate = _verify_rate(runtime_url, tenants[-1], kind=kind)
                    verify[kind].append({**rate, "load": os.getloadavg()[0]})
            results["verify"] = verify
    results["load"] = (load_before, os.getloadavg())
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
    lines = [
        f"`{command}` (embedded PostgreSQL 18, loopback TCP, runtime role).",
        f"Machine: {machine}; load average {b1:.1f} / {b5:.1f} (1 / 5 min) at the start, "
        f"{a1:.1f} / {a5:.1f} at the end. Before and after come from this one run, alternating.",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
    ]
    if "added" in results:
        rounds = results["added"]
        before = statistics.median(r["statement"] - r["without"] for r, _ in rounds)
        after = statistics.median(r["with_commit"] - r["without"] for r, _ in rounds)
        met = "met" if after <= ADDED_P50_TARGET_MS else "NOT met"
        cells = {
            variant: "; ".join(f"{r[variant]:.3f} (load {load:.1f})" for r, load in rounds)
            for variant in ADDED_VARIANTS
        }
        v1, v2 = results["server"]["v1"], results["server"]["v2"]
        client_cpu = "; ".join(
            " / ".join(f"{r[f'{v}_cpu']:.3f}" for v in ADDED_VARIANTS) for r, _ in rounds
        )
        lines += [
            f"| appends, one tenant, one connection (serialised by the head lock) | {results['single_rate']:,.0f}/s (p50 {results['single_p50_ms']:.2f} ms, p99 {results['single_p99_ms']:.2f} ms) | | |",  # noqa: E501
            f"| appends, {PARALLEL_TENANTS} tenants in parallel (a thread and connection each) | {results['parallel_rate']:,.0f}/s | | |",  # noqa: E501
            f"| write transaction p50 without an append, per round (ms) | {cells['without']} | | |",
            f"| before: with a v2 append as its own statement, per round (ms) | {cells['statement']} | median added +{before:.3f} ms | |",  # noqa: E501
            f"| after: with the append sent with COMMIT, per round (ms) | {cells['with_commit']} | <= +{ADDED_P50_TARGET_MS} ms (median added +{after:.3f}) | {met} |",  # noqa: E501
            f"| client CPU per write transaction, without / statement / with COMMIT, per round (ms) | {client_cpu} | | |",  # noqa: E501
            f"| append execution inside PostgreSQL (EXPLAIN ANALYZE), min / p50: v1, v2 | {v1[0]:.3f} / {v1[1]:.3f}, {v2[0]:.3f} / {v2[1]:.3f} ms | | |",  # noqa: E501
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
Append: `audit_append_v2` and `v1` share one chain-writing body (migration 040,
`audit_chain_write_v1`: the head lock, then the row and the head's advance in one statement).
A request's appends are sent with its COMMIT (`CommitTimeAuditWriter`, which
`RequestScope.commit` sends in one pipelined round trip): a write pays the append's execution
inside PostgreSQL, not a round trip of its own. "Added" is the median over rounds of (with -
without), each round's three variants alternating on one connection.

Verification: `verify_tenant_chain` splits a chain of at least 2 x 25,000 rows into one
contiguous seq range per available core; each range is verified in a forked process on its own
connection, in the snapshot the verifying transaction exports, starting from the stored hash of
the row before it (read in that snapshot). The previous range checks that row as its last, so
every range but the last must reach its end, and the first fault in seq order is the chain's.
Rows/s are wall clock; "per CPU-second" divides by the CPU time of the verifying processes
(this one and its forked children), without PostgreSQL's backends.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=2000, help="appends per measurement")
    parser.add_argument("--verify-rows", type=int, default=200_000, help="chain length verified")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the before/after pairs")
    parser.add_argument("--only", choices=["append", "verify"], help="measure only this part")
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
        write_section(args.write, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
