"""Write docs/openapi.json from the route-group handlers (or check that it is current).

Examples:
  uv run python scripts/export_openapi.py            # rewrite docs/openapi.json
  uv run python scripts/export_openapi.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.devstack.generated_docs import write_or_check  # noqa: E402
from scripts.devstack.openapi import build_openapi, render  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "openapi.json"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(
        argv,
        description=__doc__,
        default_output=DEFAULT_OUTPUT,
        render=lambda: render(build_openapi()),
        regenerate="`make openapi`",
    )


if __name__ == "__main__":
    sys.exit(main())
