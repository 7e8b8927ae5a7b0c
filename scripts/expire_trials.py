"""Expire trials past their time or usage, once, through the billing service (what the
scheduled job runs; locally there is no lock, so run one at a time).

Examples:
  uv run python scripts/expire_trials.py                 # the `make dev` database
  uv run python scripts/expire_trials.py --database-url postgresql://user:pw@host/db

The connection needs only what the runtime role has (RLS applies; the function scopes itself to
each tenant in turn).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.billing.repository import BillingUnitOfWork  # noqa: E402
from lambdas.billing.services.trials import expire_trials  # noqa: E402
from lambdas.shared.db import Database  # noqa: E402
from lambdas.shared.scope import RequestScope  # noqa: E402
from lambdas.shared.secrets import DbCredentials  # noqa: E402
from scripts.devstack.local_dev import (  # noqa: E402
    DEV_DB,
    DevStackNotRunning,
    running_database_url,
)


def _local_dev_url() -> str:
    try:
        return running_database_url()
    except DevStackNotRunning as exc:
        raise SystemExit(f"{exc} (or pass --database-url)") from None


def _credentials(url: str) -> DbCredentials:
    params = psycopg.conninfo.conninfo_to_dict(url)
    return DbCredentials(
        host=str(params.get("host") or "127.0.0.1"),
        port=int(params.get("port") or 5432),
        dbname=str(params.get("dbname") or DEV_DB),
        username=str(params.get("user") or "postgres"),
        password=str(params.get("password") or ""),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL URL (default: DATABASE_URL, else the `make dev` database)",
    )
    args = parser.parse_args(argv)
    credentials = _credentials(args.database_url or _local_dev_url())
    database = Database(
        lambda _force: credentials, connect_timeout_s=5, application_name="expire-trials"
    )
    try:
        with RequestScope(lambda: database, request_id="expire-trials", actor_type="system") as run:
            expired = expire_trials(lambda: BillingUnitOfWork(run, None))
    except psycopg.OperationalError:
        raise SystemExit("cannot reach the database: is `make dev` running?") from None
    finally:
        database.close()
    print(f"expired {expired} trial(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
