"""Benchmark leads on embedded PostgreSQL as the runtime role: the filtered list (warm p50), the
changes feed (rows/s), a 1,000-mutation sync push (and its replay) and the daily rollup, with
``--leads`` leads in one tenant beside ``--tenants`` - 1 smaller tenants.

Example:
  uv run python scripts/bench/leads.py                      # 100,000 leads, 10 tenants
  uv run python scripts/bench/leads.py --leads 20000 --requests 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from lambdas.leads.models import LeadFields, LeadFilters, Mutation  # noqa: E402
from lambdas.leads.service import LeadService  # noqa: E402
from lambdas.leads.sync_service import SyncService  # noqa: E402
from lambdas.leads.uow import LeadsUnitOfWork  # noqa: E402
from lambdas.migrations.roles import RuntimeRole  # noqa: E402
from lambdas.migrations.runner import MigrationRunner  # noqa: E402
from lambdas.shared.db import Database  # noqa: E402
from lambdas.shared.scope import RequestScope  # noqa: E402
from lambdas.shared.secrets import DbCredentials  # noqa: E402
from scripts.bench.stats import measure, percentile  # noqa: E402
from scripts.devstack.postgres import EmbeddedPostgres, free_port  # noqa: E402

KEY = b"bench-suppression-key-0123456789ab"
RUNTIME = "bench_runtime"
TARGETS = {"list_p50_ms": 5.0, "feed_rows_per_s": 20000, "push_1000_s": 1.0, "rollup_s": 2.0}

_SEED_SQL = """
INSERT INTO nigredo_leads.leads (
    tenant_id, full_name, email, email_normalized, company, status, tags, created_at)
SELECT %(tenant)s, 'Pessoa ' || n, 'p' || n || '@example.com', 'p' || n || '@example.com',
       (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella'])[1 + n %% 4] || ' ' || (n %% 997),
       (ARRAY['new', 'contacted', 'qualified', 'won', 'lost'])[1 + n %% 5],
       CASE WHEN n %% 10 = 0 THEN ARRAY['vip'] ELSE '{}' END,
       now() - make_interval(secs => n)
FROM generate_series(1, %(count)s) AS n
"""


def _seed(owner_url: str, tenants: int, leads: int) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        for index in range(tenants):
            row = conn.execute(
                "INSERT INTO alquimista_platform.tenants (slug, name) VALUES (%s, %s) RETURNING id",
                (f"bench-{index}-{uuid.uuid4().hex[:6]}", f"Bench {index}"),
            ).fetchone()
            if row is None:
                raise RuntimeError("the tenant was not created")
            tenant = row[0]
            ids.append(tenant)
            with conn.transaction():
                conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant),))
                conn.execute(
                    _SEED_SQL, {"tenant": tenant, "count": leads if index == 0 else leads // 10}
                )
        conn.execute("ANALYZE")
    return ids


@contextmanager
def _server() -> Iterator[tuple[str, Database]]:
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedPostgres(Path(data), port=free_port(), ephemeral=True)
        server.start()
        try:
            info = server.connection
            password = uuid.uuid4().hex
            report = MigrationRunner(
                info.url(), runtime_role=RuntimeRole(RUNTIME, password)
            ).apply()
            if not report.ok:
                raise RuntimeError(f"migration failed: {report.error}")
            creds = DbCredentials(
                host=info.host, port=info.port, dbname=info.dbname, username=RUNTIME,
                password=password,
            )  # fmt: skip
            database = Database(lambda force: creds, connect_timeout_s=5, application_name="bench")
            yield info.url(), database
            database.close()
        finally:
            server.destroy()


def _factory(database: Database, tenant: uuid.UUID, *, read_only: bool = False) -> Any:
    @contextmanager
    def factory() -> Iterator[LeadsUnitOfWork]:
        with (
            RequestScope(lambda: database, request_id="bench", read_only=read_only) as scope,
            LeadsUnitOfWork(scope, tenant) as uow,
        ):
            yield uow

    return factory


def run(args: argparse.Namespace) -> dict[str, Any]:
    with _server() as (owner_url, database):
        started = time.perf_counter()
        tenants = _seed(owner_url, args.tenants, args.leads)
        seed_s = time.perf_counter() - started
        tenant = tenants[0]
        reader = LeadService(_factory(database, tenant, read_only=True), suppression_key=KEY)
        filters = LeadFilters(status="qualified", tags=["vip"], q="acme 1")
        samples = measure(
            lambda: reader.page(filters, cursor=None, limit=50),
            requests=args.requests,
            warmup=20,
        )

        started, rows, cursor = time.perf_counter(), 0, None
        while True:
            page = reader.changes(cursor=cursor, limit=1000)
            rows += len(page.changes)
            cursor = page.cursor
            if not page.has_more:
                break
        feed_s = time.perf_counter() - started

        sync = SyncService(_factory(database, tenant), suppression_key=KEY)
        batch = [
            Mutation(
                client_mutation_id=f"bench-{n}",
                op="create",
                id=uuid.uuid4(),
                fields=LeadFields(full_name=f"Offline {n}", email=f"offline{n}@example.com"),
            )
            for n in range(1000)
        ]
        started = time.perf_counter()
        sync.push(batch, device_id="bench", user_id=None)
        push_s = time.perf_counter() - started
        started = time.perf_counter()
        sync.push(batch, device_id="bench", user_id=None)
        replay_s = time.perf_counter() - started

        factory = _factory(database, tenant)
        started = time.perf_counter()
        with factory() as uow:
            uow.retention.rollup(datetime.now(UTC).date())
            uow.commit()
        rollup_s = time.perf_counter() - started

    return {
        "machine": "2 cores shared by ~7 engineers (loaded)",
        "leads_in_tenant": args.leads,
        "tenants": args.tenants,
        "seed_s": round(seed_s, 1),
        "list_p50_ms": round(statistics.median(samples), 2),
        "list_p99_ms": round(percentile(samples, 99), 2),
        "feed_rows": rows,
        "feed_rows_per_s": round(rows / feed_s),
        "push_1000_s": round(push_s, 3),
        "replay_1000_s": round(replay_s, 3),
        "rollup_s": round(rollup_s, 3),
        "targets": TARGETS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=100_000, help="leads in the measured tenant")
    parser.add_argument("--tenants", type=int, default=10, help="tenants (others hold leads/10)")
    parser.add_argument("--requests", type=int, default=300, help="timed list requests")
    args = parser.parse_args(argv)
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
