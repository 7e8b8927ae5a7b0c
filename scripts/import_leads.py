"""Import a CSV file of leads into a tenant (operators).

  uv run python scripts/import_leads.py leads.csv --tenant acme --dry-run
  uv run python scripts/import_leads.py leads.csv --tenant 6f1c...-uuid --skip-invalid
  uv run python scripts/import_leads.py leads.csv --tenant acme --local   # the `make dev` stack

The same validation as an uploaded file (docs/leads.md, "CSV import"): e-mail and phone
normalised, CPF/CNPJ checked, duplicates within the file and against the tenant's live leads,
the suppression list (its HMAC key: --suppression-key-secret, or LEADS_SUPPRESSION_KEY for a
local run). All or nothing: one rejected row refuses the file unless --skip-invalid. The
import is recorded (``nigredo_leads.lead_imports``, audit row, outbox event) like an upload.
--dry-run changes nothing and prints the report.

Connects with DATABASE_URL (or --database-url), as the runtime role: RLS applies. --local
targets the running `make dev` stack instead: its database (DEV_STATE_DIR, DEV_PG_PORT; as its
owner, like the other scripts' --local) and the suppression key `make dev` keeps in its state
folder (the one the local Lambdas read from moto). Exit status: 0 when the file was imported
(or would be, with --dry-run), 1 when it was refused, 2 on usage or when `make dev` is not
running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lambdas.leads.csv_import import InvalidImportFile, parse_leads_csv  # noqa: E402
from lambdas.leads.imports import ImportRequest, ImportService  # noqa: E402
from lambdas.leads.intake_uow import LeadsIntakeUnitOfWork  # noqa: E402
from lambdas.shared.db import Database  # noqa: E402
from lambdas.shared.runtime import WRITERS  # noqa: E402
from lambdas.shared.scope import RequestScope  # noqa: E402
from lambdas.shared.secrets import DbCredentials, get_json_secret  # noqa: E402
from scripts.devstack.aws_resources import load_or_create_suppression_key  # noqa: E402
from scripts.devstack.local_dev import (  # noqa: E402
    DevStackNotRunning,
    running_database_url,
    state_dir,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path, help="the CSV file (UTF-8, header row)")
    parser.add_argument("--tenant", required=True, help="the tenant's id or slug")
    parser.add_argument("--dry-run", action="store_true", help="validate and report only")
    parser.add_argument(
        "--skip-invalid", action="store_true", help="import the valid rows, report the rest"
    )
    parser.add_argument(
        "--legal-basis", choices=("legitimate_interest", "consent"), default="legitimate_interest"
    )
    parser.add_argument("--campaign", type=UUID, default=None, help="campaign id for the leads")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL"
    )
    target.add_argument(
        "--local",
        action="store_true",
        help="the running `make dev` stack: its database and its suppression key",
    )
    parser.add_argument(
        "--suppression-key-secret",
        default=os.environ.get("LEADS_SUPPRESSION_SECRET_ARN"),
        help='Secrets Manager id of {"hmac_key": ...} (default: '
        "$LEADS_SUPPRESSION_SECRET_ARN; else $LEADS_SUPPRESSION_KEY)",
    )
    return parser


def local_target() -> tuple[str, bytes]:
    """The `make dev` database's URL and the suppression HMAC key of its state folder, or
    ``DevStackNotRunning`` (the key is only read once the stack is known to be there)."""
    url = running_database_url()
    return url, load_or_create_suppression_key(state_dir()).encode()


def _key(secret_id: str | None) -> bytes | None:
    if secret_id:
        return str(get_json_secret(secret_id, max_age=0)["hmac_key"]).encode()
    local = os.environ.get("LEADS_SUPPRESSION_KEY")
    return local.encode() if local else None


def _database(url: str) -> Database:
    parts = conninfo_to_dict(url)
    credentials = DbCredentials(
        host=str(parts.get("host", "localhost")),
        port=int(str(parts.get("port") or 5432)),
        dbname=str(parts["dbname"]),
        username=str(parts["user"]),
        password=str(parts.get("password", "")),
    )
    return Database(lambda force: credentials, connect_timeout_s=10, application_name="import")


def _tenant_id(url: str, tenant: str) -> UUID | None:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT id FROM alquimista_platform.tenants WHERE id::text = %s OR slug = %s",
            (tenant, tenant),
        ).fetchone()
    return UUID(str(row["id"])) if row else None


def _valid_rows(data: bytes, legal_basis: str) -> int:
    """How many rows pass the file's own checks (the progress bar's length)."""
    try:
        return len(parse_leads_csv(data, legal_basis=legal_basis).rows)
    except InvalidImportFile:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    key: bytes | None
    if args.local:
        try:
            args.database_url, key = local_target()
        except DevStackNotRunning as exc:
            print(exc, file=sys.stderr)
            return 2
    elif not args.database_url:
        print("set DATABASE_URL, or pass --database-url or --local", file=sys.stderr)
        return 2
    else:
        key = _key(args.suppression_key_secret)
    if key is None:
        print("no suppression key: pass --suppression-key-secret", file=sys.stderr)
        return 2
    tenant_id = _tenant_id(args.database_url, args.tenant)
    if tenant_id is None:
        print(f"no tenant {args.tenant}", file=sys.stderr)
        return 2
    data = args.path.read_bytes()
    database = _database(args.database_url)
    try:
        with RequestScope(
            lambda: database, request_id="import_leads", actor_type="system", writers=WRITERS
        ) as scope:
            service = ImportService(
                lambda: LeadsIntakeUnitOfWork(scope, tenant_id), suppression_key=key
            )
            request = ImportRequest(
                legal_basis=args.legal_basis,
                campanha_id=args.campaign,
                skip_invalid=args.skip_invalid,
            )
            expected = _valid_rows(data, args.legal_basis)
            with tqdm(total=expected, unit="lead", desc="importing", file=sys.stderr) as bar:

                def progress(done: int) -> None:
                    bar.update(done - bar.n)

                result = service.import_file(
                    request,
                    data,
                    source_name=args.path.name,
                    dry_run=args.dry_run,
                    progress=progress,
                )
    finally:
        database.close()
    print(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
