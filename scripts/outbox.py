"""Operate the transactional outbox: show its backlog, or rebuild a projection by replaying
every published event.

Examples:
  uv run python scripts/outbox.py status                       # the `make dev` database
  uv run python scripts/outbox.py replay --projection activity # rebuild every tenant's feed
  uv run python scripts/outbox.py replay --projection activity --tenant <uuid>
  uv run python scripts/outbox.py replay --projection activity \\
      --database-url postgresql://... --table alquimista-prod-activity --aws-endpoint-url ''

Locally the feed lives in the `make dev` moto server (DEV_MOTO_PORT, default 5001). Against AWS,
run from a host that reaches the database, with AWS credentials, and pass the environment's
table (or --env). The database connection needs only the runtime role: the outbox functions of
migration 025 are its way to every tenant's events.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lambdas.activity import service as activity  # noqa: E402
from lambdas.activity.models import EventEnvelope  # noqa: E402
from lambdas.activity.repository import ActivityFeedRepository  # noqa: E402
from lambdas.outbox import service as outbox  # noqa: E402
from lambdas.outbox.repository import OutboxUnitOfWork  # noqa: E402
from lambdas.shared.constants import resource_names  # noqa: E402
from lambdas.shared.db import Database  # noqa: E402
from lambdas.shared.scope import RequestScope  # noqa: E402
from lambdas.shared.secrets import DbCredentials  # noqa: E402
from scripts.devstack.postgres import EmbeddedPostgres  # noqa: E402
from scripts.devstack.stack import LOCAL_AWS_ENV  # noqa: E402

DEV_DB = "alquimista"
PROJECTIONS = ("activity",)


def _local_dev_url() -> str:
    state_dir = Path(os.environ.get("DEV_STATE_DIR", ROOT / ".local"))
    port = int(os.environ.get("DEV_PG_PORT", "54329"))
    server = EmbeddedPostgres(state_dir / "postgres", port=port)
    if not server.is_initialised():
        raise SystemExit("no local database: start `make dev` or pass --database-url")
    return server.connection.url(DEV_DB)


def _database(url: str) -> Database:
    params = psycopg.conninfo.conninfo_to_dict(url)
    credentials = DbCredentials(
        host=str(params.get("host") or "127.0.0.1"),
        port=int(params.get("port") or 5432),
        dbname=str(params.get("dbname") or DEV_DB),
        username=str(params.get("user") or "postgres"),
        password=str(params.get("password") or ""),
    )
    return Database(lambda _force: credentials, connect_timeout_s=5, application_name="outbox-cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL URL (default: DATABASE_URL, else the `make dev` database)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="pending, inflight and dead events; oldest pending age")
    replay = commands.add_parser("replay", help="rebuild a projection from published events")
    replay.add_argument("--projection", required=True, choices=PROJECTIONS)
    replay.add_argument("--tenant", type=uuid.UUID, help="only this tenant (default: all)")
    replay.add_argument("--env", default="dev", choices=["dev", "prod"], help="names the table")
    replay.add_argument("--table", help="the activity table (default: the --env one)")
    replay.add_argument(
        "--aws-endpoint-url",
        default=None,
        help="AWS endpoint; default: the `make dev` moto server unless --database-url is given",
    )
    replay.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def status(database: Database) -> int:
    stats = outbox.stats(lambda: OutboxUnitOfWork(RequestScope(lambda: database), None))
    age = (
        f"{(datetime.now(UTC) - stats.oldest_pending_at).total_seconds():.1f} s"
        if stats.oldest_pending_at
        else "-"
    )
    print(f"pending   {stats.pending}")
    print(f"inflight  {stats.inflight}")
    print(f"dead      {stats.dead}")
    print(f"oldest pending age  {age}")
    return 0


def replay(database: Database, args: argparse.Namespace) -> int:
    local = args.database_url is None
    endpoint = args.aws_endpoint_url
    if endpoint is None and local:
        endpoint = f"http://127.0.0.1:{os.environ.get('DEV_MOTO_PORT', '5001')}"
        for name, value in LOCAL_AWS_ENV.items():
            os.environ.setdefault(name, value)
    client = boto3.client("dynamodb", endpoint_url=endpoint or None)
    feed = ActivityFeedRepository(
        client, table=args.table or resource_names(args.env).activity_table
    )

    def uow() -> OutboxUnitOfWork:
        return OutboxUnitOfWork(RequestScope(lambda: database), None)

    total = outbox.count_published(uow, tenant_id=args.tenant)
    envelopes = (
        EventEnvelope.model_validate(event.detail())
        for event in outbox.published_events(uow, tenant_id=args.tenant)
    )
    with tqdm(total=total, unit="event", disable=args.quiet, desc="replay activity") as bar:
        deleted, written = activity.rebuild(
            feed, envelopes, tenant_id=args.tenant, on_event=lambda: bar.update(1)
        )
    scope = f"tenant {args.tenant}" if args.tenant else "every tenant"
    print(f"activity feed of {scope}: {deleted} item(s) removed, {written} rebuilt from the outbox")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    database = _database(args.database_url or _local_dev_url())
    try:
        return status(database) if args.command == "status" else replay(database, args)
    finally:
        database.close()


if __name__ == "__main__":
    sys.exit(main())
