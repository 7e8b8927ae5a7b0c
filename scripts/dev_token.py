"""Print a dev JWT for a seeded user, signed by the local gateway's key.

Example:
  uv run python scripts/dev_token.py --tenant acme --role admin
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.devstack.identities import ROLES, TENANTS, find_user  # noqa: E402
from scripts.devstack.jwt_keys import SigningKey, local_issuer  # noqa: E402
from scripts.devstack.local_dev import api_port, state_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenant", required=True, choices=[t.slug for t in TENANTS])
    parser.add_argument("--role", required=True, choices=ROLES)
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
    args = parser.parse_args(argv)
    key = SigningKey.load_or_create(args.key_dir, issuer=local_issuer(args.port))
    print(key.issue_for(find_user(args.tenant, args.role), ttl_s=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
