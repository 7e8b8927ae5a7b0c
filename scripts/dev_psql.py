"""Open psql on the `make dev` database as its owner (the embedded server's superuser).

The psql comes from the embedded PostgreSQL wheel, so nothing needs installing. Extra
arguments go to psql unchanged, e.g. a one-off statement:

  uv run python scripts/dev_psql.py                                 # interactive (make psql)
  uv run python scripts/dev_psql.py -c "select count(*) from alquimista_platform.audit_logs"

The owner is what an operator with database access is: it can switch triggers off and rewrite
rows, which is what `GET /api/audit/verify` and the S3 anchors are there to catch
(docs/audit.md). Reads DEV_STATE_DIR and DEV_PG_PORT like `make dev`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.devstack.local_dev import (  # noqa: E402
    DEV_DB,
    DevStackNotRunning,
    pg_port,
    running_database_url,
)
from scripts.devstack.postgres import psql_path  # noqa: E402


def build_command(argv: list[str] | None = None) -> list[str]:
    """The psql command line (program first); ``DevStackNotRunning`` when the stack is down."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any other argument is passed to psql (see psql --help).",
    )
    parser.add_argument("--port", type=int, default=pg_port(), help="default 54329 or DEV_PG_PORT")
    parser.add_argument("--dbname", default=DEV_DB, help=f"default {DEV_DB}")
    args, psql_args = parser.parse_known_args(argv)
    url = running_database_url(args.port, args.dbname)
    return [str(psql_path()), "--no-psqlrc", f"--dbname={url}", *psql_args]


def main(argv: list[str] | None = None) -> int:
    try:
        command = build_command(argv)
    except DevStackNotRunning as error:
        print(error, file=sys.stderr)
        return 1
    os.execv(command[0], command)  # noqa: S606 (the wheel's psql, arguments as given)


if __name__ == "__main__":
    sys.exit(main())
