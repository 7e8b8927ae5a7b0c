"""The migration Lambda.

- CloudFormation custom resource behind the CDK Provider framework: Create/Update apply the
  bundled files (a rollback's Update, with old code, finds the database ahead and succeeds);
  Delete leaves the schema alone. Any failure raises, so the deploy fails with the file and
  the PostgreSQL error, and the Provider framework answers CloudFormation either way.
- Direct invocation per environment: ``{"action": "status"|"plan"|"apply"|"baseline",
  "version": N, "allow_out_of_order": bool}`` returns the JSON report.
- ``{"action": "grant_membership", "membership": {...}}`` puts a user in a tenant with a role
  (``scripts/create_user.py``): this Lambda is the one that holds the owner's credentials
  inside the VPC.
"""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    import time
    from collections.abc import Callable
    from typing import Any

    import psycopg
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from pydantic import ValidationError

    from lambdas.migrations.memberships import GrantMembership, UnknownTenant, grant_membership
    from lambdas.migrations.report import MigrationReport
    from lambdas.migrations.roles import RuntimeRole
    from lambdas.migrations.runner import APPLICATION_NAME, MigrationRunner, RunnerOptions
    from lambdas.shared.migration_files import MIGRATIONS_DIR
    from lambdas.shared.observability import logger
    from lambdas.shared.runtime import get_runtime
    from lambdas.shared.secrets import get_db_credentials, get_json_secret
    from lambdas.shared.settings import MigrationSettings

PHYSICAL_RESOURCE_ID = "alquimista-schema"
ACTIONS = ("status", "plan", "apply", "baseline", "grant_membership")
# migration 033: a tenant keeps at least one active admin, whoever changes its memberships
LAST_ADMIN_CONSTRAINT = "memberships_last_admin"


class MigrationDeployFailed(RuntimeError):
    """Raised to the Provider framework so CloudFormation marks the resource failed."""


def _owner_conninfo(settings: MigrationSettings, *, force: bool) -> str:
    creds = get_db_credentials(
        settings.master_secret_id, max_age=settings.db_secret_max_age_s, force=force
    )
    return creds.conninfo(
        connect_timeout=settings.db_connect_timeout_s, application_name=APPLICATION_NAME
    )


def build_runner(
    settings: MigrationSettings,
    *,
    deadline: float | None,
    owner: str,
    allow_out_of_order: bool | None = None,
) -> MigrationRunner:
    def conninfo(force: bool) -> str:
        return _owner_conninfo(settings, force=force)

    runtime_role = None
    if settings.runtime_secret_id:
        secret = get_json_secret(settings.runtime_secret_id, max_age=settings.db_secret_max_age_s)
        runtime_role = RuntimeRole(name=settings.runtime_role, password=str(secret["password"]))
    options = RunnerOptions(
        lock_wait_s=settings.lock_wait_s,
        connect_retry_s=settings.connect_retry_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        lock_timeout_s=settings.lock_timeout_s,
        time_margin_s=settings.time_margin_s,
        allow_out_of_order=(
            settings.allow_out_of_order if allow_out_of_order is None else allow_out_of_order
        ),
        application_name=f"{APPLICATION_NAME}:{owner}"[:63],
        applied_by=owner,
    )
    return MigrationRunner(
        conninfo,
        directory=settings.migrations_dir or MIGRATIONS_DIR,
        runtime_role=runtime_role,
        options=options,
        deadline=deadline,
    )


def _deadline(context: LambdaContext) -> float:
    return time.monotonic() + float(context.get_remaining_time_in_millis()) / 1000


def _owner(context: LambdaContext) -> str:
    return f"{context.function_name}/{context.aws_request_id}"


def _on_custom_resource(
    event: dict[str, Any], context: LambdaContext, settings: MigrationSettings
) -> dict[str, Any]:
    request_type = event["RequestType"]
    physical_id = event.get("PhysicalResourceId") or PHYSICAL_RESOURCE_ID
    if request_type == "Delete":
        logger.info("custom resource Delete: the schema stays")
        return {"PhysicalResourceId": physical_id}
    if request_type not in ("Create", "Update"):
        raise MigrationDeployFailed(f"unsupported RequestType {request_type!r}")
    runner = build_runner(settings, deadline=_deadline(context), owner=_owner(context))
    report = runner.apply(sync_runtime_role=True)
    if not report.ok:
        raise MigrationDeployFailed(report.summary)
    return {
        "PhysicalResourceId": PHYSICAL_RESOURCE_ID,
        "Data": {
            "Applied": len(report.applied),
            "LatestVersion": str(report.latest_version or 0),
            "Ahead": ",".join(report.ahead),
        },
    }


def _on_direct(
    event: dict[str, Any], context: LambdaContext, settings: MigrationSettings
) -> dict[str, Any]:
    action = event.get("action", "apply")
    if action == "grant_membership":
        return _grant_membership(event.get("membership"), settings)
    if action not in ACTIONS:
        report = MigrationReport(str(action))
        report.fail(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        return report.as_dict()
    version = event.get("version")
    if action == "baseline" and (not isinstance(version, int) or isinstance(version, bool)):
        report = MigrationReport("baseline")
        report.fail('baseline needs an integer "version"')
        return report.as_dict()
    out_of_order = event.get("allow_out_of_order")
    runner = build_runner(
        settings,
        deadline=_deadline(context),
        owner=_owner(context),
        allow_out_of_order=bool(out_of_order) if out_of_order is not None else None,
    )
    operations: dict[str, Callable[[], MigrationReport]] = {
        "status": runner.status,
        "plan": runner.plan,
        "baseline": lambda: runner.baseline(int(version or 0)),
        "apply": lambda: runner.apply(sync_runtime_role=bool(event.get("sync_runtime_role"))),
    }
    return operations[action]().as_dict()


def _grant_membership(payload: Any, settings: MigrationSettings) -> dict[str, Any]:
    try:
        request = GrantMembership.model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(
            ".".join(str(p) for p in err["loc"]) or "membership" for err in exc.errors()
        )
        return {"action": "grant_membership", "ok": False, "error": f"invalid fields: {fields}"}
    try:
        with psycopg.connect(_owner_conninfo(settings, force=False)) as conn, conn.transaction():
            granted = grant_membership(conn, request)
    except UnknownTenant as exc:
        return {"action": "grant_membership", "ok": False, "error": str(exc)}
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name != LAST_ADMIN_CONSTRAINT:
            raise
        return {
            "action": "grant_membership",
            "ok": False,
            "error": "this is the tenant's last active admin: grant another admin first",
        }
    logger.info("membership granted", extra={"tenant_id": str(granted.tenant_id)})
    return {"action": "grant_membership", "ok": True, **granted.model_dump(mode="json")}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_runtime().migration_settings
    if "RequestType" in event:
        return _on_custom_resource(event, context, settings)
    return _on_direct(event, context, settings)
