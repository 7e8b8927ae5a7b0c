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
from scripts.devstack.postgres import EmbeddedPostgres  # noqa: E402

DEV_DB = "alquimista"


def _local_dev_url() -> str:
    state_dir = Path(os.environ.get("DEV_STATE_DIR", ROOT / ".local"))
    port = int(os.environ.get("DEV_PG_PORT", "54329"))
    server = EmbeddedPostgres(state_dir / "postgres", port=port)
    if not server.is_initialised():
        raise SystemExit("no local database: start `make dev` or pass --database-url")
    return server.connection.url(DEV_DB)


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
    finally:
        database.close()
    print(f"expired {expired} trial(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
