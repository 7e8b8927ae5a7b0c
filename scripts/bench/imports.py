"""Cold import CPU of each function's entry module in a fresh interpreter set up like its
function (Lambda's variables, only the code, the base layer and the runtime's boto3 on the
path), with bytecode and without, beside a calibration loop; optionally valgrind instruction
counts."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPORT_PROBE = """
import sys, time
started = time.process_time()
import {module}
elapsed = (time.process_time() - started) * 1000
print(elapsed, 'openai' in sys.modules, 'aws_xray_sdk.core.sampling.connector' in sys.modules)
"""

CALIBRATION_PROBE = """
import time
started = time.process_time()
sum(i * i for i in range(3_000_000))
print((time.process_time() - started) * 1000)
"""


def _calibration_probe() -> float:
    """CPU time of a fixed pure-Python loop in a fresh interpreter: how fast the (shared)
    machine was while the imports were measured, to compare runs with each other."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", CALIBRATION_PROBE], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


@dataclass(frozen=True)
class ImportResult:
    median_ms: float
    max_ms: float
    median_without_bytecode_ms: float
    openai_imported: bool


def function_modules() -> list[str]:
    """The entry module of every function but chat: the route groups', the jobs function's,
    the outbox relay's, the activity consumer's and the migration function's."""
    from lambdas.shared.routes import GROUPS  # noqa: PLC0415
    from stacks.events import CONSUMER_HANDLER, RELAY_HANDLER  # noqa: PLC0415
    from stacks.jobs import JOBS_HANDLER  # noqa: PLC0415
    from stacks.migrations import MIGRATION_HANDLER  # noqa: PLC0415

    handlers = [f"lambdas.{group}.handler.lambda_handler" for group in GROUPS if group != "chat"]
    handlers += [JOBS_HANDLER, RELAY_HANDLER, CONSUMER_HANDLER, MIGRATION_HANDLER]
    return [handler.rpartition(".")[0] for handler in handlers]


@cache
def _lambda_like_paths() -> tuple[Path, Path]:
    """The base layer and the runtime's boto3, installed for this interpreter (built once)."""
    from stacks.packaging.layers import (  # noqa: PLC0415
        BASE_LAYER,
        HOST,
        build_layer,
        build_runtime_replica,
    )

    return build_layer(BASE_LAYER, HOST) / "python", build_runtime_replica() / "python"


def _lambda_environment(module: str, code: Path, layer: Path, runtime: Path) -> dict[str, str]:
    """What the function's process sees: the variables Lambda sets and those the stack sets,
    and on the path only the code, the layer and the runtime's boto3 (``-S``: no venv)."""
    from stacks.constants import POWERTOOLS_ENVIRONMENT  # noqa: PLC0415

    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(str(p) for p in (code, layer, runtime)),
        "LAMBDA_TASK_ROOT": str(code),
        "AWS_LAMBDA_FUNCTION_NAME": f"alquimista-bench-{module.split('.')[1]}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "_HANDLER": f"{module}.lambda_handler",
        **POWERTOOLS_ENVIRONMENT,
    }


def _probe(module: str, env: dict[str, str], cwd: Path) -> tuple[float, bool, bool]:
    out = subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_PROBE.format(module=module)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), out[1] == "True", out[2] == "True"


def _instructions(code: str, env: dict[str, str], cwd: Path) -> int:
    """Instructions a fresh ``python -S -c code`` executes, counted by callgrind: unlike CPU
    time, the same on a busy machine as on an idle one."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as scratch:
        run = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={scratch}/callgrind.out",
                sys.executable,
                "-S",
                "-c",
                code,
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def import_instructions(modules: list[str]) -> dict[str, int]:
    """Instructions of each handler's import (the interpreter's own start-up subtracted)."""
    layer, runtime = _lambda_like_paths()
    results = {}
    for module in modules:
        env = _lambda_environment(module, ROOT, layer, runtime)
        _probe(module, env, ROOT)  # writes the bytecode caches
        started = _instructions("pass", env, ROOT)
        results[module] = _instructions(f"import {module}", env, ROOT) - started
    return results


def cold_imports(modules: list[str], runs: int) -> tuple[dict[str, ImportResult], float]:
    """Import CPU of each handler in a fresh interpreter set up like its Lambda function, and
    the calibration loop's CPU, interleaved round by round so drift on a shared machine falls
    on every measure alike.

    Two conditions: with bytecode next to the sources (one untimed import writes it first),
    as the bundles ship it when built on a machine with Python 3.13; and with none at all, what
    a function pays for bundles built without bytecode: its code and layers are read-only, so
    Lambda compiles every module it imports on each cold start.
    """
    layer, runtime = _lambda_like_paths()
    cached = {module: _lambda_environment(module, ROOT, layer, runtime) for module in modules}
    times: dict[str, list[float]] = {module: [] for module in modules}
    bare_times: dict[str, list[float]] = {module: [] for module in modules}
    leaked: set[str] = set()
    calibration: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        copies: list[Path] = []
        for source in (ROOT / "lambdas", layer, runtime):
            copy = Path(scratch) / str(len(copies))
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            target = copy / "lambdas" if source.name == "lambdas" else copy
            shutil.copytree(source, target, ignore=ignore)
            copies.append(copy)
        bare = {
            module: _lambda_environment(module, *copies) | {"PYTHONDONTWRITEBYTECODE": "1"}
            for module in modules
        }
        for module in modules:
            _probe(module, cached[module], ROOT)  # writes the bytecode caches
        for _ in range(runs):
            calibration.append(_calibration_probe())
            for module in modules:
                elapsed, openai, sampler_client = _probe(module, cached[module], ROOT)
                if sampler_client:
                    raise SystemExit("the X-Ray SDK built its sampling client: not Lambda's setup")
                times[module].append(elapsed)
                if openai:
                    leaked.add(module)
        # after, not between: compiling ~800 modules per probe slows the probes that follow
        for _ in range(runs):
            for module in modules:
                bare_times[module].append(_probe(module, bare[module], copies[0])[0])
    results = {
        module: ImportResult(
            median_ms=statistics.median(times[module]),
            max_ms=max(times[module]),
            median_without_bytecode_ms=statistics.median(bare_times[module]),
            openai_imported=module in leaked,
        )
        for module in modules
    }
    return results, statistics.median(calibration)
