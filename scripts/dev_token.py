"""Print a dev JWT signed by the local gateway's key: for a seeded user (by tenant and role), or
for any account of the local platform by its e-mail (e.g. one invited through
POST /api/members/invitations; looked up in the running `make dev` database).

Examples:
  uv run python scripts/dev_token.py --tenant acme --role admin
  uv run python scripts/dev_token.py --email ana@example.com

The token has the claims Cognito puts in an ID token: sub, email and custom:tenant_id (the
account's tenant: the one that invited it first; absent when it has no active membership),
with the local issuer, audience and key id the gateway checks. Exit status: 0 with a token,
1 when no account has the e-mail, 2 on usage or when `make dev` is not running.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from scripts.devstack.identities import (  # noqa: E402
    ROLES,
    TENANTS,
    TokenSubject,
    UnknownAccount,
    find_account,
    find_user,
)
from scripts.devstack.jwt_keys import SigningKey, local_issuer  # noqa: E402
from scripts.devstack.local_dev import (  # noqa: E402
    DevStackNotRunning,
    api_port,
    running_database_url,
    state_dir,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenant", choices=[t.slug for t in TENANTS], help="a seeded tenant")
    parser.add_argument("--role", choices=ROLES, help="the seeded user's role in --tenant")
    parser.add_argument(
        "--email",
        help="any account of the local platform, by e-mail (instead of --tenant/--role)",
    )
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    parser.add_argument(
        "--key-dir",
        type=Path,
        default=state_dir(),
        help="where the dev signing key lives (default .local, or DEV_STATE_DIR)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=api_port(),
        help="the gateway's port, part of the token's issuer (default 8000, or DEV_API_PORT)",
    )
    parser.add_argument(
        "--database-url",
        help="--email: where to look the account up (default: the running `make dev` database)",
    )
    return parser


def _subject(args: argparse.Namespace) -> TokenSubject:
    if args.email is None:
        return find_user(args.tenant, args.role)
    url = args.database_url or running_database_url()
    return find_account(url, args.email)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.email is not None and (args.tenant or args.role):
        parser.error("give either --email or --tenant with --role, not both")
    if args.email is None and not (args.tenant and args.role):
        parser.error("give --tenant and --role (a seeded user), or --email")
    try:
        subject = _subject(args)
    except UnknownAccount as exc:
        print(exc, file=sys.stderr)
        return 1
    except DevStackNotRunning as exc:
        print(f"{exc} (--email looks the account up there)", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(f"cannot reach the database: {exc}", file=sys.stderr)
        return 2
    key = SigningKey.load_or_create(args.key_dir, issuer=local_issuer(args.port))
    print(key.issue_for(subject, ttl_s=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
