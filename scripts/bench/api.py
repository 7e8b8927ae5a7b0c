"""Benchmark the API Lambdas in-process: warm latency of GET /api/plans and GET /api/agents
through ``lambda_handler`` with real payload v2.0 events on embedded PostgreSQL (moto for the
secrets), beside the time of the same SQL run through the repositories alone; and the cold
import CPU time of every non-chat function's entry module (``scripts/bench/imports.py``).

``--baseline REF`` compares the warm latency with the code of another commit in the same run:
REF is checked out into a temporary git worktree, each side runs in a worker process of its own
(``scripts/bench/latency_worker.py``: its own embedded PostgreSQL, migrated by its own
migrations) and the rounds alternate between the two, so drift on a shared machine falls on
both alike.

Example:
  uv run python scripts/bench/api.py                  # 2000 warm requests per route
  uv run python scripts/bench/api.py --requests 500 --imports 3
  uv run python scripts/bench/api.py --only imports   # the cold imports alone
  uv run python scripts/bench/api.py --baseline main --rounds 10 --requests 300
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench.imports import (  # noqa: E402
    ImportResult,
    cold_imports,
    function_modules,
    import_instructions,
)
from scripts.bench.latency_worker import get_request, local_api  # noqa: E402
from scripts.bench.stats import measure, percentile  # noqa: E402

TARGET_P50_MS = 2.0
TARGET_P99_MS = 5.0
TARGET_IMPORT_MS = 350.0
ROUTES = ("/api/plans", "/api/agents")


def _measure_routes(
    claims: dict[str, str], *, requests: int, warmup: int
) -> dict[str, dict[str, float]]:
    from lambdas.agents.repository import AgentsUnitOfWork  # noqa: PLC0415
    from lambdas.plans.repository import PlansUnitOfWork  # noqa: PLC0415
    from lambdas.shared.auth_repository import grant_query  # noqa: PLC0415
    from lambdas.shared.runtime import get_runtime  # noqa: PLC0415
    from lambdas.shared.scope import RequestScope  # noqa: PLC0415
    from scripts.devstack.gateway import LambdaContextStub  # noqa: PLC0415

    tenant = uuid.UUID(claims["custom:tenant_id"])
    sub = uuid.UUID(claims["sub"])
    context = LambdaContextStub(function_name="bench")
    runtime = get_runtime()

    # The same transaction the handler runs for a GET: read-only, opened by the membership
    # lookup and carried on by the route's unit of work.
    def membership() -> RequestScope:
        scope = runtime.request_scope(request_id="bench", read_only=True)
        _, opened = scope.begin(tenant, opening=grant_query(sub, tenant))
        if opened is None or opened.fetchone() is None:
            raise SystemExit("the benchmark's viewer has no membership")
        return scope

    def plans_sql() -> None:
        with membership() as scope, PlansUnitOfWork(scope, tenant) as plans:
            plans.plans.list_active()

    def agents_sql() -> None:
        with membership() as scope, AgentsUnitOfWork(scope, tenant) as agents:
            agents.catalog.page(category=None, subnucleo=None, after_slug=None, limit=21)

    results: dict[str, dict[str, float]] = {}
    for path, sql in zip(ROUTES, (plans_sql, agents_sql), strict=True):
        handler, event = get_request(claims, path)
        check = handler(event, context)
        if check["statusCode"] != 200:
            raise SystemExit(f"GET {path} answered {check['statusCode']}: {check['body']}")
        via_handler = measure(partial(handler, event, context), requests=requests, warmup=warmup)
        via_sql = measure(sql, requests=requests, warmup=warmup)
        results[f"GET {path}"] = {
            "p50": percentile(via_handler, 50),
            "p99": percentile(via_handler, 99),
            "sql_p50": percentile(via_sql, 50),
            "sql_p99": percentile(via_sql, 99),
        }
    runtime.close()
    return results


def warm_latency(requests: int, warmup: int) -> dict[str, dict[str, float]]:
    with local_api() as claims:
        return _measure_routes(claims, requests=requests, warmup=warmup)


# -- the same-run comparison with another commit ------------------------------------------


@contextmanager
def _worktree(ref: str) -> Iterator[Path]:
    """``ref`` checked out (detached) into a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        path = Path(tmp) / "code"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), ref],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
            )


class _Worker:
    """A latency_worker process measuring the code of one checkout."""

    def __init__(self, code: Path, log: Path) -> None:
        self._log = log
        with log.open("w") as errors:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "scripts/bench/latency_worker.py"),
                    "--code",
                    str(code),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        self._ask({})  # waits for {"ready": true}

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        stdin: IO[str] | None = self._process.stdin
        stdout: IO[str] | None = self._process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("worker pipes are closed")
        if message:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        line = stdout.readline()
        if not line:
            tail = self._log.read_text()[-3000:]
            raise SystemExit(f"the worker exited ({self._process.wait()}):\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def samples(self, path: str, *, requests: int, warmup: int) -> dict[str, Any]:
        """``GET path`` timed: ``samples_ms`` (wall clock) and ``cpu_ms`` per request."""
        return self._ask({"path": path, "requests": requests, "warmup": warmup})

    def decisions(self, kind: str, *, requests: int, warmup: int) -> dict[str, Any]:
        """Decisions timed (see ``latency_worker``): wall, CPU, and the backend's CPU."""
        return self._ask({"decide": kind, "requests": requests, "warmup": warmup})

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=120)


def calibration_ms() -> float:
    """CPU milliseconds of a fixed 3M-step Python loop: how fast this CPU is right now (123-146
    ms on 2026-12-01's quiet runs; about 2.4x that on 2026-12-02's)."""
    started = time.process_time()
    sum(i * i for i in range(3_000_000))
    return (time.process_time() - started) * 1000


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


Ask = Callable[[_Worker], dict[str, Any]]


def interleaved(
    baseline: str, asks: Mapping[str, Ask], *, rounds: int
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Samples of each ask (by name) for this checkout and for ``baseline``, each side in a
    worker of its own, rounds interleaved (the side measured first alternates too)."""
    sides = {"this checkout": ROOT}
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    with _worktree(baseline) as old, tempfile.TemporaryDirectory() as logs:
        sides[baseline] = old
        workers = {
            name: _Worker(code, Path(logs) / f"worker-{number}.log")
            for number, (name, code) in enumerate(sides.items())
        }
        try:
            for round_no in range(rounds):
                order = list(workers.items())
                for name, worker in order if round_no % 2 == 0 else reversed(order):
                    for label, ask in asks.items():
                        got = ask(worker)
                        into = samples.setdefault(name, {}).setdefault(label, {})
                        for key, values in got.items():
                            listed = values if isinstance(values, list) else [values]
                            into.setdefault(key, []).extend(float(v) for v in listed)
        finally:
            for worker in workers.values():
                worker.close()
    return samples


def compare(
    baseline: str, *, rounds: int, requests: int, warmup: int
) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p99 and client CPU p50 of each route for this checkout and for ``baseline``."""
    asks: dict[str, Ask] = {
        f"GET {path}": partial(_route_ask, path=path, requests=requests, warmup=warmup)
        for path in ROUTES
    }
    samples = interleaved(baseline, asks, rounds=rounds)
    return {
        name: {
            route: {
                "p50": percentile(values["samples_ms"], 50),
                "p99": percentile(values["samples_ms"], 99),
                "cpu_p50": percentile(values["cpu_ms"], 50),
            }
            for route, values in routes.items()
        }
        for name, routes in samples.items()
    }


def _route_ask(worker: _Worker, *, path: str, requests: int, warmup: int) -> dict[str, Any]:
    return worker.samples(path, requests=requests, warmup=warmup)


def _print_comparison(
    results: dict[str, dict[str, dict[str, float]]],
    baseline: str,
    args: Any,
    conditions: tuple[str, str],
) -> None:
    ours, theirs = results["this checkout"], results[baseline]
    print(
        f"warm latency, this checkout vs {baseline}: {args.rounds} interleaved rounds of "
        f"{args.requests} requests per route and side (ms); {conditions[0]}; {conditions[1]}"
    )
    print(
        f"| route | p50 | p50 at {baseline} | p99 | p99 at {baseline} "
        f"| client CPU p50 | at {baseline} |"
    )
    print("|---|---|---|---|---|---|---|")
    for route, row in ours.items():
        old = theirs[route]
        print(
            f"| `{route}` | {row['p50']:.2f} | {old['p50']:.2f} "
            f"| {row['p99']:.2f} | {old['p99']:.2f} | {row['cpu_p50']:.2f} | {old['cpu_p50']:.2f} |"
        )


def conditions(started: tuple[str, float]) -> tuple[str, str]:
    """The load average and the calibration loop at the start (``started``) and now."""
    load, calibration = started
    return (
        f"load average (1 / 5 / 15 min) {load} at the start, {load_average()} at the end",
        f"calibration loop {calibration:.0f} ms at the start, {calibration_ms():.0f} ms at the end",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per route")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    parser.add_argument(
        "--imports", type=int, default=11, help="fresh interpreters per module and condition"
    )
    parser.add_argument(
        "--only", choices=("latency", "imports"), help="run one of the two measurements"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each import's instructions with valgrind (~20 s per module)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="compare warm latency with commit REF in the same run (interleaved rounds)",
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="with --baseline: rounds per side (default 10)"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", "No application metrics to publish")
    if args.baseline:
        started = (load_average(), calibration_ms())
        compared = compare(
            args.baseline, rounds=args.rounds, requests=args.requests, warmup=args.warmup
        )
        if args.json:
            print(json.dumps(compared, indent=2))
        else:
            _print_comparison(compared, args.baseline, args, conditions(started))
        return 0

    latency = warm_latency(args.requests, args.warmup) if args.only != "imports" else {}
    groups = function_modules()
    imports, calibration = (
        cold_imports(groups, args.imports) if args.only != "latency" else ({}, None)
    )
    instructions = (
        import_instructions(groups) if args.instructions and args.only != "latency" else {}
    )
    if args.json:
        payload = {
            "latency_ms": latency,
            "imports_ms": {g: asdict(r) for g, r in imports.items()},
            "calibration_loop_ms": calibration,
            "import_instructions": instructions,
        }
        print(json.dumps(payload, indent=2))
    else:
        _print_tables(latency, imports, args)
        if calibration is not None:
            print(f"calibration: a fixed 3M-step Python loop took {calibration:.0f} ms CPU")
        for group, count in instructions.items():
            print(f"instructions, import of {group}: {count / 1e9:.3f} G")
    failed = [n for n, r in latency.items() if r["p50"] > TARGET_P50_MS or r["p99"] > TARGET_P99_MS]
    failed += [g for g, r in imports.items() if r.median_ms > TARGET_IMPORT_MS or r.openai_imported]
    if failed:
        print(f"\nover target: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _print_tables(
    latency: dict[str, dict[str, float]], imports: dict[str, ImportResult], args: Any
) -> None:
    if latency:
        print(f"warm latency over {args.requests} requests (ms)")
        print("| route | p50 | p99 | SQL p50 | SQL p99 |")
        print("|---|---|---|---|---|")
        for name, row in latency.items():
            print(
                f"| `{name}` | {row['p50']:.2f} | {row['p99']:.2f} "
                f"| {row['sql_p50']:.2f} | {row['sql_p99']:.2f} |"
            )
    if imports:
        print(
            f"\ncold import CPU of each handler module as its function loads it, "
            f"{args.imports} fresh interpreters (ms)"
        )
        print("| module | median | max | median, no bytecode | openai imported |")
        print("|---|---|---|---|---|")
        for group, r in imports.items():
            print(
                f"| `{group}` | {r.median_ms:.0f} | {r.max_ms:.0f} "
                f"| {r.median_without_bytecode_ms:.0f} | {r.openai_imported} |"
            )


if __name__ == "__main__":
    sys.exit(main())
