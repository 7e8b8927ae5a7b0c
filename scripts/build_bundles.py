"""Build what the Lambda functions ship, without CDK: the dependency layers (cached under
.local/build, the same builds ``cdk synth`` uses) and, with --code-dir, the staged code asset.
Prints each artifact's key, folder and unzipped size; exit status 1 if a build failed.

Examples:
  uv run python scripts/build_bundles.py                       # base and chat layers
  uv run python scripts/build_bundles.py --code-dir /tmp/code  # and the code asset
  uv run python scripts/build_bundles.py --layer base --host   # this machine's replica
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stacks.packaging.base import BundlingError  # noqa: E402
from stacks.packaging.code_asset import code_key, stage_code  # noqa: E402
from stacks.packaging.layers import (  # noqa: E402
    BASE_LAYER,
    CHAT_LAYER,
    HOST,
    LAMBDA,
    build_layer,
    layer_key,
)

LAYERS = {spec.name: spec for spec in (BASE_LAYER, CHAT_LAYER)}


def _size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1024**2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--layer", action="append", choices=sorted(LAYERS), help="build only these (repeatable)"
    )
    parser.add_argument("--host", action="store_true", help="for this machine, not Lambda")
    parser.add_argument("--code-dir", type=Path, help="stage the code asset into this folder")
    args = parser.parse_args(argv)
    platform = HOST if args.host else LAMBDA
    try:
        for name in args.layer or sorted(LAYERS):
            spec = LAYERS[name]
            built = build_layer(spec, platform)
            key = layer_key(spec, platform)
            print(f"layer {name} ({platform}) {key}: {built} {_size_mb(built):.1f} MB")
        if args.code_dir:
            shutil.rmtree(args.code_dir, ignore_errors=True)
            args.code_dir.mkdir(parents=True)
            stage_code(args.code_dir)
            print(f"code {code_key()}: {args.code_dir} {_size_mb(args.code_dir):.1f} MB")
    except BundlingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
