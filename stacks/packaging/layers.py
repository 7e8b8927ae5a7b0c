"""Dependency layers: ``pip install --target`` of the versions pinned in ``uv.lock``
(``uv export``), for CPython 3.13 on aarch64 (manylinux2014 *and* manylinux_2_28: psycopg 3.3
publishes arm64 wheels for 2_28 only, and with 2014 alone pip silently picks an older psycopg).

boto3, botocore and s3transfer come from the Lambda runtime: they would add ~25 MB unzipped to
every function, taking the base layer past the 60 MB budget; the code uses only long-stable
Secrets Manager and DynamoDB calls (docs/deploy.md).

Builds are cached under ``.local/build`` keyed by a hash of ``uv.lock`` and the build recipe.
The same builder makes host-platform replicas (``HOST``): the layer's exact package set, and
the runtime-provided packages at the lock's versions, installed for this machine's interpreter,
so the cold-import benchmark can import a handler from what its function ships and nothing else.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from stacks.packaging import bytecode
from stacks.packaging.base import BUILD_DIR, LAYER_ROOT, REPO_ROOT, build_lock, digest, run, uv

PIP_VERSION: Final = "26.3"
PIP_TARGET_ARGS: Final = (
    "--platform",
    "manylinux2014_aarch64",
    "--platform",
    "manylinux_2_28_aarch64",
    "--implementation",
    "cp",
    "--python-version",
    bytecode.RUNTIME_PYTHON,
    "--only-binary=:all:",
)
RUNTIME_PROVIDED_PACKAGES: Final = ("boto3", "botocore", "s3transfer")
# Target platforms: the functions' (arm64, CPython 3.13), or this machine's interpreter.
LAMBDA: Final = "lambda"
HOST: Final = "host"
_PLATFORM_ARGS: Final = {
    LAMBDA: PIP_TARGET_ARGS,
    HOST: (
        "--implementation",
        "cp",
        "--python-version",
        f"{sys.version_info.major}.{sys.version_info.minor}",
        "--only-binary=:all:",
    ),
}
DONE_MARKER: Final = ".complete"


@dataclass(frozen=True)
class LayerSpec:
    """One dependency layer: the lock's packages for ``extras``, minus those of ``base``."""

    name: str
    extras: tuple[str, ...] = ()
    base: LayerSpec | None = None
    bytecode: bool = True


BASE_LAYER: Final = LayerSpec("base")
# openai's bytecode (~2,200 modules) would take the chat function (base + chat layers) over
# the 60 MB budget: the chat function compiles openai's modules when it first imports them.
CHAT_LAYER: Final = LayerSpec("chat", extras=("chat",), base=BASE_LAYER, bytecode=False)
# The Stripe SDK, only for the function that verifies payment webhooks: 14 MiB of sources. Its
# bytecode (~1,650 modules, +10 MiB) would leave the billing function 2 MiB under the 60 MB
# budget, while a signature check loads only ~25 of them (the SDK loads resources lazily), and
# only a Stripe webhook imports it: compiling those once per execution environment is cheap.
BILLING_LAYER: Final = LayerSpec("billing", extras=("billing",), base=BASE_LAYER, bytecode=False)


@cache
def _exported(extras: tuple[str, ...], *, runtime_provided: bool) -> tuple[str, ...]:
    args = [uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"]
    args += ["--no-header", "--no-annotate"]
    for extra in extras:
        args += ["--extra", extra]
    if not runtime_provided:
        for package in RUNTIME_PROVIDED_PACKAGES:
            args += ["--no-emit-package", package]
    lines = run(args).splitlines()
    return tuple(
        line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    )


def locked_requirements(extras: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``name==version [; marker]`` lines for the runtime dependencies pinned in uv.lock."""
    return _exported(extras, runtime_provided=False)


def runtime_provided_requirements() -> tuple[str, ...]:
    """The lock's pins of the packages the Lambda runtime provides (boto3 and its kin)."""
    names = {name.replace("_", "-") for name in RUNTIME_PROVIDED_PACKAGES}
    return tuple(
        line
        for line in _exported((), runtime_provided=True)
        if line.split("==", 1)[0].strip().lower().replace("_", "-") in names
    )


def layer_requirements(spec: LayerSpec) -> tuple[str, ...]:
    wanted = locked_requirements(spec.extras)
    if spec.base is None:
        return wanted
    inherited = set(layer_requirements(spec.base))
    return tuple(line for line in wanted if line not in inherited)


def _platform_recipe(platform: str) -> tuple[str, ...]:
    # a host build is for this machine's OS and architecture, which pip picks by default
    return (*_PLATFORM_ARGS[platform], sysconfig.get_platform() if platform == HOST else "")


def layer_key(spec: LayerSpec, platform: str = LAMBDA) -> str:
    """A hash of the lock and the layer's recipe: the layer's identity."""
    compiled = bytecode.bytecode_tag() if platform == LAMBDA and spec.bytecode else "sources"
    recipe = "\n".join(
        (spec.name, *layer_requirements(spec), PIP_VERSION, *_platform_recipe(platform), compiled)
    )
    return digest((REPO_ROOT / "uv.lock").read_bytes(), recipe.encode())[:20]


def build_layer(spec: LayerSpec, platform: str = LAMBDA) -> Path:
    """The layer's content directory (holding ``python/``), built once per lock and recipe."""
    suffix = "" if platform == LAMBDA else f"-{platform}"
    target = BUILD_DIR / f"layer-{spec.name}{suffix}-{layer_key(spec, platform)}"
    compile_for = f"{LAYER_ROOT}/python" if platform == LAMBDA and spec.bytecode else None
    return _install(target, layer_requirements(spec), platform, compile_for)


def build_runtime_replica() -> Path:
    """boto3, botocore and s3transfer at the lock's versions for this machine (``python/``):
    what the Lambda runtime adds to a function's path, for the cold-import benchmark."""
    requirements = runtime_provided_requirements()
    recipe = "\n".join(("runtime", *requirements, PIP_VERSION, *_platform_recipe(HOST)))
    key = digest((REPO_ROOT / "uv.lock").read_bytes(), recipe.encode())[:20]
    return _install(BUILD_DIR / f"runtime-{HOST}-{key}", requirements, HOST, None)


def _install(
    target: Path, requirements: tuple[str, ...], platform: str, compile_for: str | None
) -> Path:
    """pip-install ``requirements`` into ``target/python`` for ``platform``; with
    ``compile_for``, add the runtime's bytecode recording that mount point."""
    if (target / DONE_MARKER).exists():
        return target
    with build_lock(target.name.rsplit("-", 1)[0]):
        if (target / DONE_MARKER).exists():
            return target
        with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix=f".{target.name}-") as scratch:
            work = Path(scratch)
            (work / "requirements.txt").write_text("\n".join(requirements) + "\n")
            run(
                [
                    uv(),
                    "tool",
                    "run",
                    "--from",
                    f"pip=={PIP_VERSION}",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "--no-compile",
                    "--target",
                    str(work / "content" / "python"),
                    *_PLATFORM_ARGS[platform],
                    "--requirement",
                    str(work / "requirements.txt"),
                ]
            )
            content = work / "content"
            if compile_for:
                bytecode.compile_bytecode(content / "python", compile_for)
            (content / DONE_MARKER).write_text("\n".join(requirements) + "\n")
            shutil.rmtree(target, ignore_errors=True)
            content.rename(target)
    return target
