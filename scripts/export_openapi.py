"""Write docs/openapi.json from the route-group handlers (or check that it is current).

Examples:
  uv run python scripts/export_openapi.py            # rewrite docs/openapi.json
  uv run python scripts/export_openapi.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.devstack.openapi import build_openapi, render  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "openapi.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the file is not current")
    args = parser.parse_args(argv)
    content = render(build_openapi())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != content:
            print(f"{args.output} is stale: run `make openapi`", file=sys.stderr)
            return 1
        print(f"{args.output} is current")
        return 0
    args.output.write_text(content)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
