"""Run the schema migrations: status, plan, apply or baseline.

Per environment, the deployed migration Lambda does the work (it reaches the private
database and holds the credentials):

  uv run python scripts/migrate.py status --env dev
  uv run python scripts/migrate.py apply --env prod
  uv run python scripts/migrate.py baseline --version 7 --env prod

The function is found through the CloudFormation output MigrationFunctionName of the stacks
named Alquimista-<env>-*, or given with --function-name. Locally the same runner core runs
in this process, as the owner:

  uv run python scripts/migrate.py plan --local            # the `make dev` database
  uv run python scripts/migrate.py apply --database-url postgresql://user:pw@host/db

Exit status: 0 when the run succeeded, 1 when it failed or refused (the report says why).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# The runner logs each file at INFO for CloudWatch; a terminal wants the report only.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.migrations.roles import RuntimeRole  # noqa: E402
from lambdas.migrations.runner import MigrationRunner, RunnerOptions  # noqa: E402
from lambdas.shared.constants import ENVIRONMENTS, resource_names  # noqa: E402
from lambdas.shared.migration_files import MIGRATIONS_DIR  # noqa: E402
from scripts.devstack.deployed import (  # noqa: E402
    DeployedLookupError,
    find_stack_output,
    invoke_once,
)

FUNCTION_OUTPUT_KEY = "MigrationFunctionName"
INVOKE_READ_TIMEOUT_S = 900
LOCAL_DB = "alquimista"
LOCAL_CONNECT_RETRY_S = 5.0  # a local server is up or not; no cluster to wait for


class CommandError(Exception):
    """The command cannot run as asked (exit status 2)."""


def find_function_name(cloudformation: Any, env: str) -> str:
    """The migration function's name, from the output of a stack named Alquimista-<env>-*."""
    try:
        return find_stack_output(cloudformation, env, FUNCTION_OUTPUT_KEY)
    except DeployedLookupError as exc:
        raise CommandError(f"{exc}, or pass --function-name") from None


def invoke_lambda(args: argparse.Namespace) -> dict[str, Any]:
    import boto3  # noqa: PLC0415

    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    name = args.function_name or find_function_name(session.client("cloudformation"), args.env)
    print(f"invoking {name} ({args.action}) …", file=sys.stderr, flush=True)
    body = invoke_once(session, name, _payload(args), read_timeout_s=INVOKE_READ_TIMEOUT_S)
    if not isinstance(body, dict):
        return {"action": args.action, "ok": False, "error": f"unexpected reply: {body!r}"}
    body.setdefault("action", args.action)
    return body


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    payload: dict[str, Any] = {"action": args.action}
    if args.version is not None:
        payload["version"] = args.version
    if args.allow_out_of_order:
        payload["allow_out_of_order"] = True
    return payload


def local_database_url(pg_port: int) -> str:
    """The database `make dev` runs (embedded PostgreSQL in DEV_STATE_DIR, default .local)."""
    from scripts.devstack.local_dev import DevStackNotRunning, running_database_url  # noqa: PLC0415

    try:
        return running_database_url(pg_port, LOCAL_DB)
    except DevStackNotRunning as exc:
        raise CommandError(str(exc)) from None


def run_locally(args: argparse.Namespace, url: str) -> dict[str, Any]:
    runner = MigrationRunner(
        url,
        directory=args.directory,
        runtime_role=RuntimeRole(resource_names("dev").runtime_db_role),
        options=RunnerOptions(
            allow_out_of_order=args.allow_out_of_order,
            lock_wait_s=args.lock_wait,
            connect_retry_s=LOCAL_CONNECT_RETRY_S,
        ),
    )
    if args.action == "status":
        return runner.status().as_dict()
    if args.action == "plan":
        return runner.plan().as_dict()
    if args.action == "baseline":
        return runner.baseline(args.version).as_dict()
    return runner.apply().as_dict()


def format_report(report: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    for item in report.get("applied", []):
        verb = "recorded" if report.get("action") == "baseline" else "applied"
        rows.append((str(item["version"]), item["file"], f"{verb} ({item['execution_ms']} ms)"))
    if report.get("action") == "status":
        rows.extend(
            (str(e["version"]), e["name"], "applied" if e["success"] else "FAILED")
            for e in report.get("ledger", [])
        )
    rows.extend(("", name, "pending") for name in report.get("pending", []))
    rows.extend(("", name, "ahead (not in this bundle)") for name in report.get("ahead", []))
    lines = []
    if rows:
        width = [max(len(r[i]) for r in (*rows, ("version", "file", "state"))) for i in range(3)]
        header = ("version", "file", "state")
        lines.append("  ".join(h.ljust(width[i]) for i, h in enumerate(header)))
        lines.append("  ".join("-" * w for w in width))
        lines.extend("  ".join(c.ljust(width[i]) for i, c in enumerate(r)) for r in rows)
        lines.append("")
    lines.extend(f"note: {note}" for note in report.get("notes", []))
    lines.extend(f"drift: {drift}" for drift in report.get("drift", []))
    if report.get("invalid_indexes"):
        lines.append(f"INVALID indexes: {', '.join(report['invalid_indexes'])}")
    applied = report.get("ledger") if report.get("action") == "status" else None
    if report.get("ok"):
        lines.append(
            f"{report.get('action')}: ok ({len(applied or report.get('applied', []))} applied, "
            f"{len(report.get('pending', []))} pending, {report.get('duration_ms', 0)} ms)"
        )
    else:
        lines.append(f"{report.get('action')}: FAILED: {report.get('error')}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "action", nargs="?", default="status", choices=["status", "plan", "apply", "baseline"]
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--env", choices=ENVIRONMENTS, help="invoke the deployed Lambda")
    target.add_argument("--local", action="store_true", help="the `make dev` database")
    target.add_argument("--database-url", help="any PostgreSQL, as its owner (libpq URL)")
    parser.add_argument("--function-name", help="skip the CloudFormation output lookup")
    parser.add_argument("--profile", help="AWS profile (default: the usual chain)")
    parser.add_argument("--region", help="AWS region (default: the usual chain)")
    parser.add_argument("--version", type=int, help="baseline: record files up to this one")
    parser.add_argument("--allow-out-of-order", action="store_true")
    parser.add_argument("--lock-wait", type=float, default=60.0, help="seconds (local runs)")
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("DEV_PG_PORT", "54329")))
    parser.add_argument("--directory", type=Path, default=MIGRATIONS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the raw JSON report")
    args = parser.parse_args(argv)
    if args.action == "baseline" and args.version is None:
        parser.error("baseline needs --version N")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.env:
            report = invoke_lambda(args)
        else:
            url = args.database_url or os.environ.get("DATABASE_URL")
            report = run_locally(args, url or local_database_url(args.pg_port))
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0 if report.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
