"""Run the platform locally: embedded PostgreSQL, a moto server, the migration Lambda, dev
seed data and the local API gateway on 127.0.0.1:8000. Ctrl-C stops everything.

Environment:
  DATABASE_URL     use this PostgreSQL server instead of the embedded one (needs pgvector)
  DEV_PG_PORT      embedded PostgreSQL port (default 54329)
  DEV_MOTO_PORT    moto server port (default 5001)
  DEV_API_PORT     gateway port (default 8000)
  DEV_STATE_DIR    where the database, the dev signing key and the lock live (default .local)
  DEV_JOBS_INTERVAL_S  how often the scheduled jobs run (default 300; 0 turns them off)
  DEV_OUTBOX_INTERVAL_S  how often the outbox relay and the activity consumer run (default 2)
  DEV_POOL_SIZE    execution environments (processes) per function (default 4)
  DEV_LLM_PORT     the offline OpenAI-compatible server's port (default 8001); with
                   LLM_BASE_URL and LLM_API_KEY set, that provider is used instead
  DEV_INGEST_INTERVAL_S  how often new uploads are looked for and ingested (default 1)
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import IO

import psycopg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.devstack import console  # noqa: E402
from scripts.devstack.aws_resources import load_or_create_suppression_key  # noqa: E402
from scripts.devstack.gateway import LocalGateway  # noqa: E402
from scripts.devstack.gateway_server import GatewayServer  # noqa: E402
from scripts.devstack.identities import USERS  # noqa: E402
from scripts.devstack.jwt_keys import SigningKey, local_issuer  # noqa: E402
from scripts.devstack.lambda_pool import (  # noqa: E402
    DEFAULT_POOL_SIZE,
    FunctionPool,
    InvocationFailed,
)
from scripts.devstack.local_dev import state_dir  # noqa: E402
from scripts.devstack.openapi import docs_routes  # noqa: E402
from scripts.devstack.postgres import ConnectionInfo, EmbeddedPostgres  # noqa: E402
from scripts.devstack.seed import seed_dev_data  # noqa: E402
from scripts.devstack.stack import (  # noqa: E402
    LOCAL_AWS_ENV,
    QUIET_POWERTOOLS_ENV,
    provision_and_migrate,
)

DEV_DB = "alquimista"


class AlreadyRunning(SystemExit):
    pass


def _hold_lock(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "unknown"
        raise AlreadyRunning(
            f"make dev is already running (pid {pid}); stop it with Ctrl-C first"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _server_from_url(url: str) -> tuple[ConnectionInfo, str]:
    params = psycopg.conninfo.conninfo_to_dict(url)
    with psycopg.connect(url, connect_timeout=5) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    if not found:
        raise SystemExit("DATABASE_URL points at a server without the pgvector extension")
    info = ConnectionInfo(
        host=str(params.get("host") or "127.0.0.1"),
        port=int(params.get("port") or 5432),
        user=str(params.get("user") or "postgres"),
        password=str(params.get("password") or ""),
    )
    return info, str(params.get("dbname") or DEV_DB)


def _ensure_database(info: ConnectionInfo, dbname: str) -> None:
    with psycopg.connect(info.url("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="dev", choices=["dev"], help="environment to emulate")
    parser.add_argument("--host", default="127.0.0.1", help="gateway address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEV_API_PORT", "8000")))
    parser.add_argument(
        "--moto-port", type=int, default=int(os.environ.get("DEV_MOTO_PORT", "5001"))
    )
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("DEV_PG_PORT", "54329")))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=state_dir(),
        help="database, signing key and lock folder (default .local, git-ignored)",
    )
    parser.add_argument(
        "--jobs-interval",
        type=float,
        default=float(os.environ.get("DEV_JOBS_INTERVAL_S", "300")),
        help="seconds between runs of the scheduled jobs (all of JOB_SCHEDULES but "
        "anchor_audit_heads); 0 turns them off",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=int(os.environ.get("DEV_POOL_SIZE", str(DEFAULT_POOL_SIZE))),
        help="execution environments (processes) per function (default 4)",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="delete the local database (refused while make dev runs), then exit",
    )
    parser.add_argument(
        "--no-serve", action="store_true", help="set everything up, then exit (for smoke tests)"
    )
    return parser.parse_args(argv)


def _start_postgres(stack: ExitStack, state_dir: Path, pg_port: int) -> tuple[ConnectionInfo, str]:
    if os.environ.get("DATABASE_URL"):
        info, dbname = _server_from_url(os.environ["DATABASE_URL"])
        print(f"• PostgreSQL: using DATABASE_URL ({info.host}:{info.port}/{dbname})")
    else:
        pg = EmbeddedPostgres(state_dir / "postgres", port=pg_port)
        print(f"• PostgreSQL 18 (embedded) starting on 127.0.0.1:{pg_port} …", flush=True)
        stack.callback(pg.stop)
        pg.start()
        info, dbname = pg.connection, DEV_DB
    _ensure_database(info, dbname)
    return info, dbname


def _start_moto(stack: ExitStack, port: int) -> None:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    stack.callback(moto.stop)
    os.environ.update(LOCAL_AWS_ENV)
    os.environ.update(QUIET_POWERTOOLS_ENV)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    print(f"• moto (AWS APIs) on 127.0.0.1:{port}", flush=True)


# The scheduled jobs the local stack runs: every job of stacks/constants.py JOB_SCHEDULES but
# anchoring (it needs the Object Lock bucket: AWS only; `scripts/audit.py anchor --local`).
DEV_JOBS = (
    "expire_trials",
    "sweep_approvals",
    "release_chat_reservations",
    "index_chat_embeddings",
    "leads_dsr_deadlines",
    "rollup_leads_metrics",
    "purge_deleted_leads",
    "count_lead_search_keys",
)


def _start_job_timer(stack: ExitStack, interval_s: float) -> None:
    """What EventBridge does on AWS: invoke the jobs Lambda on a schedule, in its own
    execution environment."""
    if interval_s <= 0:
        return
    jobs = FunctionPool(
        "lambdas.jobs.handler.lambda_handler",
        "alquimista-dev-jobs",
        environment=dict(os.environ),
        size=1,
    )
    stack.callback(jobs.close)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            for job in DEV_JOBS:
                if stop.is_set():  # Ctrl-C: the pool is closing, start no other job
                    return
                try:
                    report: object = jobs.invoke({"job": job})
                except InvocationFailed as failure:  # reported; the next run may pass
                    report = {"job": job, "ok": False, "error": failure.reason}
                if not stop.is_set():  # a run cut short by Ctrl-C is not news
                    print(f"• scheduled job: {report}", flush=True)

    threading.Thread(target=loop, name="dev-jobs", daemon=True).start()
    stack.callback(stop.set)


def _start_llm(stack: ExitStack, port: int) -> None:
    """The offline provider, unless a real one is configured (LLM_BASE_URL and LLM_API_KEY)."""
    if os.environ.get("LLM_BASE_URL") and os.environ.get("LLM_API_KEY"):
        print(f"• LLM: {os.environ['LLM_BASE_URL']} (configured provider)", flush=True)
        return
    from scripts.devstack.llm_server import start_llm_server  # noqa: PLC0415

    server = start_llm_server(port=port)
    stack.callback(server.stop)
    os.environ["LLM_BASE_URL"] = server.base_url
    os.environ["LLM_API_KEY"] = server.api_key
    print(f"• LLM (offline, OpenAI-compatible) on {server.base_url}", flush=True)


def _start_ingestion(stack: ExitStack, env: str, interval_s: float) -> None:
    """What the documents and the leads imports buckets' S3 notifications do on AWS: new uploads
    invoke the chat ingestion and the leads CSV import functions (each in its own execution
    environment)."""
    from lambdas.shared.constants import resource_names  # noqa: PLC0415
    from scripts.devstack.ingestion_poller import (  # noqa: PLC0415
        notified_buckets,
        start_ingestion_poller,
    )

    if interval_s <= 0:
        return
    for notified in notified_buckets(resource_names(env)):
        function = FunctionPool(
            notified.handler,
            f"alquimista-{env}-{notified.label}",
            environment=dict(os.environ),
            size=1,
        )
        stack.callback(function.close)
        stack.callback(
            start_ingestion_poller(
                notified.bucket,
                _invoker(function),
                prefix=notified.prefix,
                suffix=notified.suffix,
                interval_s=interval_s,
                report=_reporter(notified.label),
                name=f"dev-{notified.label}",
            )
        )


def _invoker(function: FunctionPool) -> Callable[[dict[str, object]], object]:
    def invoke(event: dict[str, object]) -> object:
        try:
            return function.invoke(event)
        except InvocationFailed as failure:
            return {"ok": False, "error": failure.reason}

    return invoke


def _reporter(label: str) -> Callable[[object], None]:
    def report(result: object) -> None:
        print(f"• {label}: {result}", flush=True)

    return report


def _start_outbox_timer(stack: ExitStack, env: str, interval_s: float) -> None:
    """What the relay's schedule and the activity queue's event source mapping do on AWS. They
    run in this process (the gateway's functions run in their own), one tick at a time."""
    from lambdas.shared.constants import resource_names  # noqa: PLC0415
    from scripts.devstack.context import LambdaContextStub  # noqa: PLC0415
    from scripts.devstack.events import start_outbox_timer  # noqa: PLC0415

    if interval_s > 0:
        stack.callback(
            start_outbox_timer(
                threading.Lock(),
                resource_names(env),
                lambda name: LambdaContextStub(function_name=f"alquimista-dev-{name}"),
                interval_s=interval_s,
            )
        )


def _serve_until_stopped(stack: ExitStack, gateway: LocalGateway, host: str, port: int) -> None:
    server = GatewayServer(gateway, host, port, extra_routes=docs_routes())
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    stack.callback(server.stop)
    stop.wait()
    print("\nstopping …", flush=True)


def _reset(state: Path, pg_port: int) -> int:
    with _hold_lock(state / "dev.lock"):
        EmbeddedPostgres(state / "postgres", port=pg_port).destroy()
    print(f"local database in {state} removed; the next `make dev` starts from an empty cluster")
    return 0


def _quiet_console() -> None:
    """Human log lines locally (JSON stays on AWS); no metrics to flush without CloudWatch."""
    os.environ[console.ENV_FLAG] = "1"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    console.human_logs()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.reset:
        return _reset(args.state_dir, args.pg_port)
    _quiet_console()
    with ExitStack() as stack:
        stack.enter_context(_hold_lock(args.state_dir / "dev.lock"))
        info, dbname = _start_postgres(stack, args.state_dir, args.pg_port)
        _start_moto(stack, args.moto_port)
        _start_llm(stack, int(os.environ.get("DEV_LLM_PORT", "8001")))
        provision_and_migrate(
            args.env,
            info,
            dbname=dbname,
            suppression_key=load_or_create_suppression_key(args.state_dir),
        )
        print("• migrations applied through the migration Lambda (CloudFormation Create event)")
        seed_dev_data(info.url(dbname))
        print("• dev data seeded (tenants: acme, globex; users: admin, member, viewer in each)")
        key = SigningKey.load_or_create(args.state_dir, issuer=local_issuer(args.port))
        if args.no_serve:
            return 0
        _print_banner(args.host, args.port, key)
        gateway = LocalGateway(key, env=args.env, pool_size=args.pool_size)
        _start_job_timer(stack, args.jobs_interval)
        _start_outbox_timer(stack, args.env, float(os.environ.get("DEV_OUTBOX_INTERVAL_S", "2")))
        _start_ingestion(stack, args.env, float(os.environ.get("DEV_INGEST_INTERVAL_S", "1")))
        _serve_until_stopped(stack, gateway, args.host, args.port)
    return 0


def _print_banner(host: str, port: int, key: SigningKey) -> None:
    admin = next(u for u in USERS if u.role == "admin")
    token = key.issue_for(admin)
    url = f"http://{host}:{port}"
    print(
        f"""
Alquimista local API on {url}   (Ctrl-C stops everything)

Dev token for {admin.email} (tenant {admin.tenant.slug}, role admin; 1 hour):
{token}

API docs (Swagger UI): {url}/docs

Try:
  curl {url}/health
  TOKEN=$(make -s token TENANT=acme ROLE=admin)
  curl -H "Authorization: Bearer $TOKEN" {url}/api/plans
""",
        flush=True,
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
