"""Create a platform user in a deployed environment: a Cognito user and its membership row.

  uv run python scripts/create_user.py --env dev --email ana@acme.com.br \\
      --tenant acme --tenant-name "Acme Indústria Ltda" --role admin

1. creates the Cognito user (Cognito e-mails a temporary password), or reuses it if the
   e-mail is already registered;
2. asks the migration Lambda (the only function holding the owner's credentials, inside the
   VPC) to create the tenant if needed, the user row and the membership with the role;
3. sets the user's ``custom:tenant_id`` so the ID token carries the tenant.

Running it again with another --role changes the role; nothing else is duplicated.
Exit status: 0 on success, 1 when a step failed (the message says which).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, get_args

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.migrations.memberships import Role  # noqa: E402
from lambdas.shared.constants import ENVIRONMENTS, TENANT_CLAIM  # noqa: E402
from scripts.devstack.deployed import (  # noqa: E402
    DeployedLookupError,
    find_stack_output,
    invoke_once,
)

ROLES: tuple[str, ...] = get_args(Role)


class CreateUserFailed(Exception):
    pass


def ensure_cognito_user(cognito: Any, pool_id: str, email: str) -> str:
    """The Cognito ``sub`` of ``email``, creating the user if it does not exist."""
    try:
        user = cognito.admin_get_user(UserPoolId=pool_id, Username=email)
        attributes = user["UserAttributes"]
    except cognito.exceptions.UserNotFoundException:
        created = cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[
                {"Name": "email", "Value": email},
                {"Name": "email_verified", "Value": "true"},
            ],
            DesiredDeliveryMediums=["EMAIL"],
        )
        attributes = created["User"]["Attributes"]
    for attribute in attributes:
        if attribute["Name"] == "sub":
            return str(attribute["Value"])
    raise CreateUserFailed(f"Cognito returned no sub for {email}")


def create_user(
    *,
    cognito: Any,
    invoke: Any,
    pool_id: str,
    email: str,
    tenant: str,
    tenant_name: str | None,
    role: str,
    full_name: str | None,
) -> dict[str, Any]:
    sub = ensure_cognito_user(cognito, pool_id, email)
    membership = {
        "tenant_slug": tenant,
        "tenant_name": tenant_name,
        "cognito_sub": sub,
        "email": email,
        "full_name": full_name,
        "role": role,
    }
    reply = invoke({"action": "grant_membership", "membership": membership})
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else reply
        raise CreateUserFailed(f"membership not granted: {error}")
    cognito.admin_update_user_attributes(
        UserPoolId=pool_id,
        Username=email,
        UserAttributes=[{"Name": TENANT_CLAIM, "Value": str(reply["tenant_id"])}],
    )
    return {"sub": sub, **reply}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", required=True, choices=ENVIRONMENTS)
    parser.add_argument("--email", required=True)
    parser.add_argument("--tenant", required=True, help="tenant slug, e.g. acme")
    parser.add_argument("--tenant-name", help="creates the tenant with this name if it is new")
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--full-name")
    parser.add_argument("--profile", help="AWS profile (default: the environment's)")
    parser.add_argument("--region", help="AWS region (default: the profile's)")
    args = parser.parse_args(argv)

    import boto3  # noqa: PLC0415

    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    try:
        cloudformation = session.client("cloudformation")
        pool_id = find_stack_output(cloudformation, args.env, "UserPoolId")
        function = find_stack_output(cloudformation, args.env, "MigrationFunctionName")
        result = create_user(
            cognito=session.client("cognito-idp"),
            invoke=lambda payload: invoke_once(session, function, payload, read_timeout_s=120),
            pool_id=pool_id,
            email=args.email,
            tenant=args.tenant,
            tenant_name=args.tenant_name,
            role=args.role,
            full_name=args.full_name,
        )
    except (CreateUserFailed, DeployedLookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.email} is {result['role']} of {args.tenant} "
        f"(tenant {result['tenant_id']}, user {result['user_id']}, sub {result['sub']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
