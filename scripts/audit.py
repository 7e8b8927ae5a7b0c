"""Verify the audit hash chains, tenant by tenant, against the rows, the database's head rows
and the latest external anchor (S3 Object Lock). Exit status 1 when a chain is broken.

  uv run python scripts/audit.py verify --local                  # the `make dev` stack
  uv run python scripts/audit.py verify --local --tenant acme    # one tenant (slug or UUID)
  uv run python scripts/audit.py verify --env dev --db-host 127.0.0.1 --db-port 15432
  uv run python scripts/audit.py anchor --local                  # write an anchor now

--env reads the runtime role's credentials from Secrets Manager and the anchor bucket from the
stack outputs; the cluster sits in private subnets, so connect through a tunnel (e.g. SSM port
forwarding) and give its local end with --db-host/--db-port. --database-url takes any libpq URL
(with --anchor-bucket, or --no-anchor).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lambdas.audit import service  # noqa: E402
from lambdas.audit.anchors import S3AnchorStore, anchor_of  # noqa: E402
from lambdas.audit.models import AnchorDocument  # noqa: E402
from lambdas.audit.repository import AuditHeadsRepository, AuditRepository  # noqa: E402
from lambdas.shared.audit import Anchor, AuditRow, verify_chain  # noqa: E402
from lambdas.shared.constants import (  # noqa: E402
    AUDIT_ANCHOR_RETENTION_DAYS,
    ENVIRONMENTS,
    TENANT_SETTING,
    resource_names,
)
from scripts.devstack.deployed import DeployedLookupError, find_stack_output  # noqa: E402
from scripts.devstack.stack import LOCAL_AWS_ENV  # noqa: E402

BUCKET_OUTPUT_KEY = "AuditAnchorBucketName"
LOCAL_DB = "alquimista"
# Chains shorter than this verify without a progress bar.
PROGRESS_MIN_ROWS = 50_000


class CommandError(Exception):
    """The command cannot run as asked (exit status 2)."""


@dataclass(frozen=True)
class Target:
    database_url: str
    s3: Any | None  # a boto3 S3 client, or None to skip the external anchor
    bucket: str | None


def _local_target(args: argparse.Namespace) -> Target:
    import boto3  # noqa: PLC0415

    from scripts.devstack.postgres import EmbeddedPostgres  # noqa: PLC0415

    server = EmbeddedPostgres(ROOT / ".local" / "postgres", port=args.pg_port)
    if not server.is_initialised():
        raise CommandError("no local database yet: run `make dev` first")
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{args.moto_port}",
        region_name=LOCAL_AWS_ENV["AWS_REGION"],
        aws_access_key_id=LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    return Target(server.connection.url(LOCAL_DB), s3, resource_names("dev").audit_anchor_bucket)


def _deployed_target(args: argparse.Namespace) -> Target:
    import json  # noqa: PLC0415

    import boto3  # noqa: PLC0415

    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    names = resource_names(args.env)
    secret = json.loads(
        session.client("secretsmanager").get_secret_value(SecretId=names.runtime_db_secret)[
            "SecretString"
        ]
    )
    url = psycopg.conninfo.make_conninfo(
        host=args.db_host or secret["host"],
        port=args.db_port or secret.get("port", 5432),
        user=secret["username"],
        password=secret["password"],
        dbname=secret.get("dbname", LOCAL_DB),
        sslmode="require",
    )
    try:
        bucket = args.anchor_bucket or find_stack_output(
            session.client("cloudformation"), args.env, BUCKET_OUTPUT_KEY
        )
    except DeployedLookupError as exc:
        raise CommandError(f"{exc}, or pass --anchor-bucket") from None
    return Target(url, session.client("s3"), bucket)


def _url_target(args: argparse.Namespace) -> Target:
    import boto3  # noqa: PLC0415

    bucket = None if args.no_anchor else args.anchor_bucket
    return Target(args.database_url, boto3.client("s3") if bucket else None, bucket)


def _target(args: argparse.Namespace) -> Target:
    if args.local:
        target = _local_target(args)
    elif args.env:
        target = _deployed_target(args)
    else:
        target = _url_target(args)
    if args.no_anchor:
        return Target(target.database_url, None, None)
    return target


def _tenants(conn: psycopg.Connection[dict[str, Any]], selector: str | None) -> list[Any]:
    rows = conn.execute("SELECT id, slug FROM alquimista_platform.tenants ORDER BY slug").fetchall()
    if selector is None:
        return rows
    chosen = [row for row in rows if selector in {row["slug"], str(row["id"])}]
    if not chosen:
        raise CommandError(f"no tenant with slug or id {selector!r}")
    return chosen


def _with_progress(rows: Iterator[AuditRow], total: int, label: str) -> Iterator[AuditRow]:
    if total < PROGRESS_MIN_ROWS or not sys.stderr.isatty():
        return rows
    return iter(tqdm(rows, total=total, desc=label, unit="row", unit_scale=True, leave=False))


def verify(args: argparse.Namespace) -> int:
    target = _target(args)
    document = _latest_anchor(target)
    if document is None and target.bucket:
        print(f"note: no anchor in s3://{target.bucket} yet", file=sys.stderr)
    broken = 0
    with psycopg.connect(target.database_url, row_factory=dict_row, autocommit=True) as conn:
        for tenant in _tenants(conn, args.tenant):
            ok = _verify_tenant(conn, tenant, document, args)
            broken += 0 if ok else 1
    return 1 if broken else 0


def _latest_anchor(target: Target) -> AnchorDocument | None:
    if target.s3 is None or target.bucket is None:
        return None
    store = S3AnchorStore(
        target.s3, bucket=target.bucket, retention_days=AUDIT_ANCHOR_RETENTION_DAYS
    )
    return store.latest()


def _verify_tenant(
    conn: psycopg.Connection[dict[str, Any]],
    tenant: dict[str, Any],
    document: AnchorDocument | None,
    args: argparse.Namespace,
) -> bool:
    tenant_id: uuid.UUID = tenant["id"]
    with conn.transaction():
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant_id)))
        log = AuditRepository(conn, tenant_id)
        head = log.head()
        external = anchor_of(document, tenant_id) if document else None
        anchors: list[Anchor] = [a for a in (head, external) if a is not None]
        start = args.from_seq or 1
        prev = log.row_hash_at(start - 1) if start > 1 else bytes(32)
        if prev is None:
            print(f"{tenant['slug']}: the chain has no row {start - 1}", file=sys.stderr)
            return False
        total = (args.to_seq or (head.seq if head else 0)) - start + 1
        workers = args.workers or service.available_cores()
        if workers > 1 and total >= 2 * service.MIN_RANGE_ROWS:
            # in parallel seq ranges, a process each (no progress bar: the ranges run at once)
            result = service.verify_log(
                log, anchors, from_seq=start, to_seq=args.to_seq, workers=workers
            )
        else:
            # closed here too: the progress bar's iterator does not close the stream it wraps
            with closing(log.stream(start, args.to_seq)) as stream:
                result = verify_chain(
                    _with_progress(stream, total, tenant["slug"]),
                    from_seq=start,
                    prev_hash=prev,
                    to_seq=args.to_seq,
                    anchors=anchors,
                )
    response = service.verify_response(result, external)
    anchored = f", anchor seq {external.seq}" if external else ", no anchor"
    if response.ok:
        print(f"{tenant['slug']}: ok, {response.checked} rows checked{anchored}")
    else:
        print(
            f"{tenant['slug']}: BROKEN at seq {response.first_bad_seq}: {response.reason} "
            f"({response.checked} rows verified before it{anchored})"
        )
    return response.ok


def anchor(args: argparse.Namespace) -> int:
    target = _target(args)
    if target.s3 is None or target.bucket is None:
        raise CommandError("anchoring needs a bucket (--local, --env, or --anchor-bucket)")
    store = S3AnchorStore(target.s3, bucket=target.bucket, retention_days=args.retention_days)
    with psycopg.connect(target.database_url, row_factory=dict_row, autocommit=True) as conn:
        heads = AuditHeadsRepository(conn).all_heads()
    report = store.put(AnchorDocument(at=datetime.now(UTC), heads=heads))
    print(f"anchored {report.tenants} tenants in s3://{target.bucket}/{report.key}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["verify", "anchor"])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--env", choices=ENVIRONMENTS, help="a deployed environment")
    target.add_argument("--local", action="store_true", help="the `make dev` stack")
    target.add_argument("--database-url", help="any PostgreSQL (libpq URL)")
    parser.add_argument("--tenant", help="one tenant, by slug or UUID (default: all)")
    parser.add_argument("--from-seq", type=int, help="first seq to check (default 1)")
    parser.add_argument("--to-seq", type=int, help="last seq to check (default: the head)")
    parser.add_argument(
        "--workers",
        type=int,
        help="verify a long chain in this many parallel seq ranges (default: the cores)",
    )
    parser.add_argument("--anchor-bucket", help="the anchor bucket (default: from the stack)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the S3 anchor")
    parser.add_argument(
        "--retention-days", type=int, default=1, help="anchor: COMPLIANCE retention (days)"
    )
    parser.add_argument("--db-host", help="--env: the local end of a tunnel to the cluster")
    parser.add_argument("--db-port", type=int, help="--env: its port")
    parser.add_argument("--profile", help="AWS profile (default: the usual chain)")
    parser.add_argument("--region", help="AWS region (default: the usual chain)")
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("DEV_PG_PORT", "54329")))
    parser.add_argument(
        "--moto-port", type=int, default=int(os.environ.get("DEV_MOTO_PORT", "5001"))
    )
    args = parser.parse_args(argv)
    if args.from_seq is not None and args.from_seq < 1:
        parser.error("--from-seq must be at least 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.to_seq is not None and args.to_seq < (args.from_seq or 1):
        parser.error("--to-seq must not be below --from-seq")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return verify(args) if args.action == "verify" else anchor(args)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(f"cannot reach the database: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
