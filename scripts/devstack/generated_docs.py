"""The command line of a script that writes a generated document (docs/openapi.json,
docs/events.md) or checks that the committed one is current."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(
    argv: list[str] | None,
    *,
    description: str | None,
    default_output: Path,
    render: Callable[[], str],
    regenerate: str,
) -> int:
    """Write ``render()`` to ``--output`` (default ``default_output``), or with ``--check``
    exit 1 naming ``regenerate`` (how to rebuild it) when the file differs."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=default_output)
    parser.add_argument("--check", action="store_true", help="fail if the file is not current")
    args = parser.parse_args(argv)
    content = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != content:
            print(f"{args.output} is stale: run {regenerate}", file=sys.stderr)
            return 1
        print(f"{args.output} is current")
        return 0
    args.output.write_text(content)
    print(f"wrote {args.output}")
    return 0
