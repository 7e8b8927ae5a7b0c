"""The Lambda code asset and dependency layers, built on this machine without Docker.

- Code: ``lambdas/`` and ``database/migrations/`` staged with the repository's layout, because
  the migration runner and the health route find the SQL files at ``parents[2]`` of
  ``lambdas/shared/migration_files.py``.
- Layers: ``pip install --target`` of the versions pinned in ``uv.lock`` (``uv export``), for
  CPython 3.13 on aarch64 (manylinux2014 *and* manylinux_2_28: psycopg 3.3 publishes arm64 wheels
  for 2_28 only, and with 2014 alone pip silently picks an older psycopg).
- boto3, botocore and s3transfer come from the Lambda runtime: they would add ~25 MB unzipped to
  every function, taking the base layer past the 60 MB budget; the code uses only long-stable
  Secrets Manager and DynamoDB calls (docs/deploy.md).

Builds are cached under ``.local/build`` keyed by a hash of ``uv.lock`` and the build recipe, so
repeated synths and tests reuse them; CDK calls the builders only for assets it actually stages.

Both are shipped with bytecode when a CPython of the runtime's version is on this machine
(``LAMBDA_BYTECODE_PYTHON``, ``python3.13`` on ``PATH`` or a pyenv install): a function's code and
layers are read-only, so without ``.pyc`` files Lambda compiles every module it imports on each
cold start (about three times the import's CPU, docs/benchmarks.md). The files are
``unchecked-hash`` pycs (valid whatever the zip does to modification times) whose recorded paths
are the ones Lambda mounts (``/var/task``, ``/opt/python``). Without such an interpreter the
bundles ship sources only, and synthesis says so.

The same builder makes host-platform replicas (``HOST``): the layer's exact package set, and the
runtime-provided packages at the lock's versions, installed for this machine's interpreter, so the
cold-import benchmark can import a handler from what its function ships and nothing else.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.constants import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
BUILD_DIR: Final = REPO_ROOT / ".local" / "build"
CODE_SOURCES: Final = ("lambdas", "database/migrations")
PIP_VERSION: Final = "26.3"
RUNTIME_PYTHON: Final = "3.13"  # the functions' runtime (stacks.constants.LAMBDA_RUNTIME)
PIP_TARGET_ARGS: Final = (
    "--platform",
    "manylinux2014_aarch64",
    "--platform",
    "manylinux_2_28_aarch64",
    "--implementation",
    "cp",
    "--python-version",
    RUNTIME_PYTHON,
    "--only-binary=:all:",
)
RUNTIME_PROVIDED_PACKAGES: Final = ("boto3", "botocore", "s3transfer")
TASK_ROOT: Final = "/var/task"
LAYER_ROOT: Final = "/opt"
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
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")
_DONE_MARKER: Final = ".complete"


class BundlingError(RuntimeError):
    """A layer or the code asset could not be built."""


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


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    local = REPO_ROOT / ".local" / "tools" / "bin" / "uv"
    if found:
        return found
    if local.exists():
        return str(local)
    raise BundlingError("uv not found: run `make sync`")


def _run(args: list[str]) -> str:
    # The arguments are this module's constants and paths, never user input.
    result = subprocess.run(  # noqa: S603
        args, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        command = " ".join(arg if "\n" not in arg else "<program>" for arg in args[:4])
        output = (result.stdout + result.stderr).strip()
        raise BundlingError(f"{command} ... failed:\n{output[-4000:]}")
    return result.stdout


@cache
def _exported(extras: tuple[str, ...], *, runtime_provided: bool) -> tuple[str, ...]:
    args = [_uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"]
    args += ["--no-header", "--no-annotate"]
    for extra in extras:
        args += ["--extra", extra]
    if not runtime_provided:
        for package in RUNTIME_PROVIDED_PACKAGES:
            args += ["--no-emit-package", package]
    lines = _run(args).splitlines()
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


_COMPILE = """
import compileall, py_compile, sys
target, prefix = sys.argv[1], sys.argv[2]
compiled = compileall.compile_dir(
    target, quiet=1, workers=0, stripdir=target, prependdir=prefix,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if compiled else 1)
"""
# release level, major.minor, and the magic number that tags the bytecode it writes
_PROBE = (
    "import importlib.util, sys; "
    "print(sys.version_info.releaselevel, '%d.%d' % sys.version_info[:2], "
    "importlib.util.MAGIC_NUMBER.hex())"
)


def _bytecode_magic(candidate: str) -> str | None:
    """The bytecode magic of ``candidate`` if it is a final CPython of the runtime's minor
    version (a pre-release writes bytecode the runtime ignores)."""
    try:
        probe = subprocess.run(  # noqa: S603 - a path we looked up, a constant program
            [candidate, "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    wanted = ["final", RUNTIME_PYTHON]
    return probe[2] if len(probe) == 3 and probe[:2] == wanted else None


def _version_key(path: Path) -> tuple[int, ...]:
    # pyenv's versions/<3.13.N>/bin/python3.13, newest first by number, not by text
    return tuple(int(part) if part.isdigit() else -1 for part in path.parents[1].name.split("."))


@cache
def bytecode_python() -> tuple[str, str] | None:
    """(path, bytecode magic) of a CPython of the Lambda runtime's version, if there is one."""
    minor = RUNTIME_PYTHON
    chosen = os.environ.get("LAMBDA_BYTECODE_PYTHON")
    if chosen:
        magic = _bytecode_magic(chosen)
        if magic is None:
            raise BundlingError(f"LAMBDA_BYTECODE_PYTHON={chosen} is not a final CPython {minor}")
        return chosen, magic
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    installed = sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"), key=_version_key, reverse=True)
    for candidate in filter(None, [shutil.which(f"python{minor}"), *map(str, installed)]):
        magic = _bytecode_magic(candidate)
        if magic:
            return candidate, magic
    return None


def bytecode_tag() -> str:
    """Part of every asset's recipe: the bytecode format and how it was compiled, if it was."""
    found = bytecode_python()
    if found is None:
        return "bytecode-none"
    recipe = _digest(_COMPILE.encode(), TASK_ROOT.encode(), LAYER_ROOT.encode())[:12]
    return f"bytecode-{found[1]}-{recipe}"


def compile_bytecode(directory: Path, mounted_at: str) -> bool:
    """Write ``unchecked-hash`` pycs for the runtime's Python under ``directory``, recording
    paths as ``mounted_at``; False (and nothing written) without such an interpreter. A file
    that does not compile fails the build: it would fail on Lambda too."""
    found = bytecode_python()
    if found is None:
        _warn_no_bytecode()
        return False
    _run([found[0], "-I", "-c", _COMPILE, str(directory), mounted_at])
    return True


@cache
def _warn_no_bytecode() -> None:
    minor = RUNTIME_PYTHON
    print(  # noqa: T201 - synthesis output, once per process
        f"warning: no Python {minor} found (set LAMBDA_BYTECODE_PYTHON): the Lambda bundles ship "
        "without bytecode, so every cold start compiles the imported modules",
        file=sys.stderr,
    )


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _platform_recipe(platform: str) -> tuple[str, ...]:
    # a host build is for this machine's OS and architecture, which pip picks by default
    return (*_PLATFORM_ARGS[platform], sysconfig.get_platform() if platform == HOST else "")


def layer_key(spec: LayerSpec, platform: str = LAMBDA) -> str:
    compiled = bytecode_tag() if platform == LAMBDA and spec.bytecode else "sources"
    recipe = "\n".join(
        (spec.name, *layer_requirements(spec), PIP_VERSION, *_platform_recipe(platform), compiled)
    )
    return _digest((REPO_ROOT / "uv.lock").read_bytes(), recipe.encode())[:20]


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise builds of one artifact across processes (pytest-xdist workers, parallel synths)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with (BUILD_DIR / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    key = _digest((REPO_ROOT / "uv.lock").read_bytes(), recipe.encode())[:20]
    return _install(BUILD_DIR / f"runtime-{HOST}-{key}", requirements, HOST, None)


def _install(
    target: Path, requirements: tuple[str, ...], platform: str, compile_for: str | None
) -> Path:
    """pip-install ``requirements`` into ``target/python`` for ``platform``; with
    ``compile_for``, add the runtime's bytecode recording that mount point."""
    if (target / _DONE_MARKER).exists():
        return target
    with _locked(target.name.rsplit("-", 1)[0]):
        if (target / _DONE_MARKER).exists():
            return target
        with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix=f".{target.name}-") as scratch:
            work = Path(scratch)
            (work / "requirements.txt").write_text("\n".join(requirements) + "\n")
            _run(
                [
                    _uv(),
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
                compile_bytecode(content / "python", compile_for)
            (content / _DONE_MARKER).write_text("\n".join(requirements) + "\n")
            shutil.rmtree(target, ignore_errors=True)
            content.rename(target)
    return target


def code_key() -> str:
    parts: list[bytes] = [bytecode_tag().encode()]
    for source in CODE_SOURCES:
        for path in sorted((REPO_ROOT / source).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                parts += [path.relative_to(REPO_ROOT).as_posix().encode(), path.read_bytes()]
    return _digest(*parts)[:20]


def stage_code(output: Path) -> None:
    """Copy the code sources into ``output``, keeping the repository's layout, and compile
    them for the runtime's Python."""
    for source in CODE_SOURCES:
        shutil.copytree(REPO_ROOT / source, output / source, ignore=_IGNORED, dirs_exist_ok=True)
    compile_bytecode(output / "lambdas", f"{TASK_ROOT}/lambdas")


def _link_or_copy(source: str, destination: str) -> object:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
    return destination


@jsii.implements(ILocalBundling)
class LocalBuild:
    """CDK's local-bundling hook: fills the asset's output directory without Docker.

    It never returns False: falling back to Docker would hide a broken local build.
    """

    def __init__(self, fill: Callable[[Path], None]) -> None:
        self._fill = fill

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        self._fill(Path(output_dir))
        return True


def _copy_layer(spec: LayerSpec) -> Callable[[Path], None]:
    def fill(output: Path) -> None:
        shutil.copytree(
            build_layer(spec),
            output,
            ignore=shutil.ignore_patterns(_DONE_MARKER),
            copy_function=_link_or_copy,
            dirs_exist_ok=True,
        )

    return fill


def _bundling(fill: Callable[[Path], None]) -> BundlingOptions:
    # The image is required by the API and used only if local bundling declined; it never does.
    return BundlingOptions(image=LAMBDA_RUNTIME.bundling_image, local=LocalBuild(fill))


class LambdaBundleConstruct(Construct):
    """The shared code asset and the dependency layers every function of a stack uses."""

    def __init__(self, scope: Construct, construct_id: str, *, with_chat_layer: bool) -> None:
        super().__init__(scope, construct_id)
        self.code = self._build_code()
        self.base_layer = self._build_layer(BASE_LAYER, "Runtime dependencies of every function")
        self.billing_layer = self._build_layer(
            BILLING_LAYER, "The Stripe SDK, for the billing function only"
        )
        self.chat_layer = (
            self._build_layer(CHAT_LAYER, "The LLM client, for the chat function only")
            if with_chat_layer
            else None
        )

    def layers_for(self, *, chat: bool, billing: bool = False) -> list[lambda_.ILayerVersion]:
        if billing:
            return [self.base_layer, self.billing_layer]
        if not chat:
            return [self.base_layer]
        if self.chat_layer is None:
            raise ValueError("this bundle was built without the chat layer")
        return [self.base_layer, self.chat_layer]

    def _build_code(self) -> lambda_.Code:
        return lambda_.Code.from_asset(
            str(REPO_ROOT / "lambdas"),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=f"code-{code_key()}",
            bundling=_bundling(stage_code),
        )

    def _build_layer(self, spec: LayerSpec, description: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            f"{spec.name.capitalize()}Layer",
            code=lambda_.Code.from_asset(
                str(REPO_ROOT / "lambdas"),
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=f"layer-{spec.name}-{layer_key(spec)}",
                bundling=_bundling(_copy_layer(spec)),
            ),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
            description=description,
        )
