"""What each function ships: the built assets, measured unzipped, as the cloud assembly has them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks.constants import LAMBDA_RUNTIME
from stacks.packaging import bytecode
from stacks.packaging.base import REPO_ROOT, TASK_ROOT, BundlingError
from stacks.packaging.bytecode import RUNTIME_PYTHON, bytecode_python
from stacks.packaging.code_asset import code_key
from stacks.packaging.layers import BASE_LAYER, CHAT_LAYER, build_layer, layer_key
from tests.infrastructure.conftest import CHAT_ROUTE, Synthesis

MAX_UNZIPPED_BYTES = 60 * 1024 * 1024
RUNTIME_TAG = ".cpython-313.pyc"
UNCHECKED_HASH_FLAGS = 0b01  # PEP 552: hash-based, source not checked
RECORDED_PATH = (
    "import marshal, sys; print(marshal.loads(open(sys.argv[1], 'rb').read()[16:]).co_filename)"
)


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def _asset(synthesis: Synthesis, resource: dict[str, Any]) -> Path:
    return synthesis.outdir / str(resource["Metadata"]["aws:asset:path"])


def _bundles(synthesis: Synthesis) -> dict[str, list[Path]]:
    """Each Python function's handler and the asset directories it ships (code, then layers)."""
    bundles = {}
    for template in synthesis.templates.values():
        resources = template["Resources"]
        for resource in resources.values():
            props = resource["Properties"]
            if resource["Type"] != "AWS::Lambda::Function" or "python" not in props["Runtime"]:
                continue
            if not props["Handler"].startswith("lambdas."):  # CDK's own custom resources
                continue
            layers = [_asset(synthesis, resources[layer["Ref"]]) for layer in props["Layers"]]
            bundles[props["Handler"]] = [_asset(synthesis, resource), *layers]
    return bundles


def _has_package(directory: Path, name: str) -> bool:
    """Whether ``name`` is importable from this asset (a layer's ``python/`` or the code root)."""
    return any(
        (root / name / "__init__.py").is_file() for root in (directory, directory / "python")
    )


def test_each_function_ships_under_60_mb_unzipped(with_chat: Synthesis) -> None:
    bundles = _bundles(with_chat)
    assert len(bundles) >= 3  # health, chat, migrations at least
    sizes = {handler: sum(_size(d) for d in dirs) for handler, dirs in bundles.items()}
    assert all(0 < size < MAX_UNZIPPED_BYTES for size in sizes.values()), sizes


def test_the_code_asset_keeps_the_repository_layout(with_chat: Synthesis) -> None:
    for code, *_ in _bundles(with_chat).values():
        assert (code / "lambdas" / "shared" / "migration_files.py").is_file()
        assert list((code / "database" / "migrations").glob("*.sql"))
        # bytecode of this machine's interpreter never leaks in; only the runtime's may be there
        assert all(p.name.endswith(RUNTIME_TAG) for p in code.rglob("*.pyc"))


def test_only_the_chat_and_ingestion_functions_contain_openai(with_chat: Synthesis) -> None:
    chat_handlers = {
        f"lambdas.{CHAT_ROUTE.group}.handler.lambda_handler",
        "lambdas.chat.ingest_handler.lambda_handler",
    }
    for handler, dirs in _bundles(with_chat).items():
        shipped = any(_has_package(d, "openai") for d in dirs)
        assert shipped is (handler in chat_handlers), handler


def test_only_the_billing_function_contains_stripe(with_chat: Synthesis) -> None:
    billing_handler = "lambdas.billing.handler.lambda_handler"
    bundles = _bundles(with_chat)
    assert billing_handler in bundles
    for handler, dirs in bundles.items():
        shipped = any(_has_package(d, "stripe") for d in dirs)
        assert shipped is (handler == billing_handler), handler


def test_base_layer_holds_psycopg_33_for_aarch64_cpython_313() -> None:
    python = build_layer(BASE_LAYER) / "python"
    versions = [
        re.fullmatch(r"psycopg(?:_binary)?-(\d+\.\d+)\.\d+\.dist-info", p.name)
        for p in python.iterdir()
    ]
    assert sorted(m.group(1) for m in versions if m) == ["3.3", "3.3"]
    assert list((python / "psycopg_binary").glob("_psycopg.cpython-313-aarch64-linux-gnu.so"))
    assert list(python.glob("pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so"))


def test_boto3_comes_from_the_lambda_runtime_not_the_layers() -> None:
    for spec in (BASE_LAYER, CHAT_LAYER):
        layer = build_layer(spec)
        assert not _has_package(layer, "boto3")
        assert not _has_package(layer, "botocore")
    assert _has_package(build_layer(BASE_LAYER), "aws_lambda_powertools")


def test_chat_layer_adds_openai_without_repeating_the_base_layer() -> None:
    base = {p.name for p in (build_layer(BASE_LAYER) / "python").iterdir()}
    chat = {p.name for p in (build_layer(CHAT_LAYER) / "python").iterdir()}
    assert "openai" in chat
    assert "openai" not in base
    assert not {n for n in base & chat if n.endswith(".dist-info")}


def _pyc_for(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}{RUNTIME_TAG}"


def _python_sources(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*.py") if "__pycache__" not in p.parts]


def test_code_and_base_layer_ship_the_runtimes_unchecked_bytecode(with_chat: Synthesis) -> None:
    found = bytecode_python()
    if found is None:
        pytest.skip("no Python 3.13 on this machine: the bundles ship sources only")
    code = _bundles(with_chat)["lambdas.health.handler.lambda_handler"][0]
    for sources in (_python_sources(code / "lambdas"), _python_sources(build_layer(BASE_LAYER))):
        assert sources
        missing = [p for p in sources if not _pyc_for(p).is_file()]
        assert not missing, missing[:5]
        flags = {int.from_bytes(_pyc_for(p).read_bytes()[4:8], "little") for p in sources}
        assert flags == {UNCHECKED_HASH_FLAGS}
    # paths recorded for tracebacks are where Lambda mounts the code, not this machine's
    handler_pyc = _pyc_for(code / "lambdas" / "health" / "handler.py")
    recorded = subprocess.run(
        [found[0], "-I", "-c", RECORDED_PATH, str(handler_pyc)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert recorded == f"{TASK_ROOT}/lambdas/health/handler.py"


def test_the_chat_layer_ships_sources_only_to_stay_in_budget() -> None:
    assert not list(build_layer(CHAT_LAYER).rglob("*.pyc"))


def test_the_bytecode_format_is_part_of_every_compiled_assets_hash(monkeypatch) -> None:
    def keys(found: tuple[str, str] | None) -> tuple[str, str, str]:
        monkeypatch.setattr(bytecode, "bytecode_python", lambda: found)
        return code_key(), layer_key(BASE_LAYER), layer_key(CHAT_LAYER)

    sources = keys(None)
    py313 = keys(("/opt/python3.13", "f30d0d0a"))
    other_magic = keys(("/opt/python3.13", "f40d0d0a"))

    assert len({sources[0], py313[0], other_magic[0]}) == 3
    assert len({sources[1], py313[1], other_magic[1]}) == 3
    assert sources[2] == py313[2] == other_magic[2]  # the chat layer ships sources only


def test_a_wrong_bytecode_python_is_refused_not_skipped(monkeypatch) -> None:
    monkeypatch.setenv("LAMBDA_BYTECODE_PYTHON", "/bin/false")
    bytecode_python.cache_clear()
    try:
        with pytest.raises(BundlingError, match="LAMBDA_BYTECODE_PYTHON"):
            bytecode_python()
    finally:
        monkeypatch.delenv("LAMBDA_BYTECODE_PYTHON")
        bytecode_python.cache_clear()


def test_without_python_313_the_build_warns_and_ships_sources(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bytecode, "bytecode_python", lambda: None)
    bytecode._warn_no_bytecode.cache_clear()
    (tmp_path / "module.py").write_text("VALUE = 1\n")

    assert bytecode.compile_bytecode(tmp_path, "/var/task") is False

    assert not list(tmp_path.rglob("*.pyc"))
    assert "without bytecode" in capsys.readouterr().err


def test_a_file_that_does_not_compile_fails_the_build(tmp_path) -> None:
    if bytecode_python() is None:
        pytest.skip("no Python 3.13 on this machine: nothing is compiled")
    (tmp_path / "fine.py").write_text("VALUE = 1\n")
    (tmp_path / "broken.py").write_text("def broken(:\n")

    with pytest.raises(BundlingError, match=r"broken\.py"):
        bytecode.compile_bytecode(tmp_path, "/var/task")


def test_the_build_targets_the_functions_runtime() -> None:
    assert f"python{RUNTIME_PYTHON}" == LAMBDA_RUNTIME.name


def test_the_build_system_runs_without_cdk() -> None:
    # scripts/build_bundles.py and the cold-import benchmark build layers without jsii's Node
    probe = (
        "import sys, stacks.packaging.layers, stacks.packaging.code_asset; "
        "sys.exit(any(m.startswith(('aws_cdk', 'jsii')) for m in sys.modules))"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=REPO_ROOT)
