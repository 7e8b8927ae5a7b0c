"""Benchmark the decision route warm and in-process: ``POST /api/approvals/{id}/decisions``
through the approvals function's ``lambda_handler`` with real payload v2.0 events, on embedded
PostgreSQL migrated by the migration Lambda, with moto for the secrets (as the local stack).

Each request decides a fresh pending request (a decider decides a request once), two kinds in
turn (alternating, so load falls on both alike):

  approve, still pending  quorum 2: the first approval (the decision, its audit row and event);
  approve, quorum reached quorum 1: the request ends approved, its requester is notified too.

Every request carries the full path: the JWT claims, the membership lookup opening the
transaction, the route's validation, the database's rules (triggers), the audit append, the
outbox event, COMMIT, and the response: two round trips (the opening; the decision,
``decide_approval_v4``, pipelined with COMMIT).

Besides wall-clock latency it reports the CPU a decision costs, which the machine's load does not
change: the client's (this process, ``time.process_time``) per request, and the PostgreSQL
backend's (from /proc) over the run divided by the requests. On a loaded machine the wall clock
also holds the time both spend waiting for a core at each round trip. ``--profile N`` prints
cProfile's top N functions of the timed requests (it slows them: its latencies are not reported).

Target: p50 <= 5 ms warm.

``--baseline REF`` runs this checkout and commit REF side by side instead, each in a worker
process of its own (``scripts/bench/latency_worker.py``), rounds alternating.

Example:
  uv run python scripts/bench/decisions.py                  # 500 decisions of each kind
  uv run python scripts/bench/decisions.py --baseline 8544807 --rounds 6 --requests 100
  uv run python scripts/bench/decisions.py --requests 1000 --write docs/benchmarks.md  # on top
  uv run python scripts/bench/decisions.py --requests 200 --profile 30   # where the time goes
  uv run python scripts/bench/decisions.py --requests 800 --sample 40    # CPU shares, sampled
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench.cpu_sampler import CpuSampler  # noqa: E402
from scripts.bench.latency_worker import (  # noqa: E402
    backend_cpu_s,
    decision_event,
    local_stack,
    seed_approvals,
)
from scripts.bench.stats import percentile  # noqa: E402
from scripts.bench.support import machine_description  # noqa: E402

SECTION_TITLE = "## Approval decisions"
TARGET_P50_MS = 5.0
KINDS = ("pending", "approved")  # what the decision leaves (quorum 2, quorum 1)
QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class Samples:
    wall_ms: dict[str, list[float]]  # per request, by kind
    client_cpu_ms: dict[str, list[float]]  # per request, by kind
    backend_cpu_ms: float  # per request, both kinds (the kernel counts it in clock ticks)


def measure(requests: int, warmup: int, *, profile: int = 0, sample: int = 0) -> Samples:
    import cProfile  # noqa: PLC0415
    import pstats  # noqa: PLC0415
    import time  # noqa: PLC0415

    from lambdas.shared.runtime import get_runtime  # noqa: PLC0415
    from scripts.devstack.gateway import LambdaContextStub  # noqa: PLC0415

    with local_stack() as owner_url:
        claims, ids = seed_approvals(owner_url, dict.fromkeys(KINDS, requests + warmup))
        handler: Handler = importlib.import_module("lambdas.approvals.handler").lambda_handler
        context = LambdaContextStub(function_name="bench")
        events = {kind: [decision_event(claims, i) for i in ids[kind]] for kind in KINDS}
        wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
        cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
        profiler = cProfile.Profile() if profile else None
        sampler = CpuSampler() if sample else None
        backend = 0
        backend_started = 0.0
        for n in range(requests + warmup):
            if n == warmup:
                if sampler is not None:
                    # the timer runs over the whole loop: restarted per request, a CPU timer
                    # of the kernel's tick granularity would rarely fire
                    sampler.start()
                backend = int(get_runtime().database.connection().info.backend_pid)
                backend_started = backend_cpu_s(backend)
            for kind in KINDS:
                event = events[kind][n]
                if profiler is not None and n >= warmup:
                    profiler.enable()
                started, cpu_started = time.perf_counter(), time.process_time()
                answer = handler(event, context)
                elapsed = (time.perf_counter() - started) * 1000
                cpu_ms = (time.process_time() - cpu_started) * 1000
                if profiler is not None:
                    profiler.disable()
                body = json.loads(answer["body"])
                if answer["statusCode"] != 200 or body["status"] != kind:
                    raise SystemExit(f"the decision answered {answer['statusCode']}: {body}")
                if n >= warmup:
                    wall[kind].append(elapsed)
                    cpu[kind].append(cpu_ms)
        if sampler is not None:
            sampler.stop()
        backend_ms = (backend_cpu_s(backend) - backend_started) * 1000 / (requests * len(KINDS))
        if profiler is not None:
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(profile)
            stats.sort_stats("tottime").print_stats(profile)
        if sampler is not None:
            print(sampler.report(sample), file=sys.stderr)
    return Samples(wall_ms=wall, client_cpu_ms=cpu, backend_cpu_ms=backend_ms)


HEADER = (
    "| `POST /api/approvals/{id}/decisions` | code | p50 ms | p95 ms | p99 ms "
    "| client CPU p50 ms | backend CPU ms | p50 target |"
)
LABELS = {"pending": "approve, still pending (quorum 2)", "approved": "approve, quorum reached"}
COMMAND = "uv run --frozen python scripts/bench/decisions.py"


def render(samples: Samples, *, machine: str, requests: int, conditions: tuple[str, str]) -> str:
    rows = []
    for kind, values in samples.wall_ms.items():
        p50 = statistics.median(values)
        met = "met" if p50 <= TARGET_P50_MS else "NOT met"
        client = statistics.median(samples.client_cpu_ms[kind])
        rows.append(
            f"| {LABELS[kind]} | {p50:.2f} ms | {percentile(values, 95):.2f} ms "
            f"| {percentile(values, 99):.2f} ms | {client:.2f} ms "
            f"| p50 <= {TARGET_P50_MS} ms | {met} |"
        )
    table = "\n".join(rows)
    return f"""{SECTION_TITLE}

`{COMMAND} --requests {requests} --write docs/benchmarks.md`
(in-process: the approvals function's `lambda_handler` with payload v2.0 events; embedded
PostgreSQL 18 over loopback TCP as the runtime role, moto for the secrets; every request decides a
fresh pending request, the two kinds alternating). Machine: {machine}; {conditions[0]};
{conditions[1]}.

| `POST /api/approvals/{{id}}/decisions` | p50 | p95 | p99 | client CPU p50 | target | |
|---|---|---|---|---|---|---|
{table}

PostgreSQL backend CPU per decision (both kinds, over the run): {samples.backend_cpu_ms:.2f} ms.
"""


def compare(
    baseline: str, *, rounds: int, requests: int, warmup: int, calibrations: list[float]
) -> dict[str, Any]:
    """Decisions of each kind for this checkout and for ``baseline``, in workers of their own
    (``latency_worker``), rounds interleaved: wall p50/p95/p99, client CPU p50, backend CPU.
    The calibration loop runs before every ask (into ``calibrations``): how fast the CPU was
    throughout, not only at the ends (on this shared machine it moves by 2x within minutes)."""
    from functools import partial  # noqa: PLC0415

    from scripts.bench.api import calibration_ms, interleaved  # noqa: PLC0415

    def ask(worker: Any, *, kind: str) -> dict[str, Any]:
        calibrations.append(calibration_ms())
        answer: dict[str, Any] = worker.decisions(kind, requests=requests, warmup=warmup)
        return answer

    asks = {kind: partial(ask, kind=kind) for kind in KINDS}
    samples = interleaved(baseline, asks, rounds=rounds)
    return {
        side: {
            kind: {
                "p50": percentile(got["samples_ms"], 50),
                "p95": percentile(got["samples_ms"], 95),
                "p99": percentile(got["samples_ms"], 99),
                "cpu_p50": percentile(got["cpu_ms"], 50),
                "backend_cpu": statistics.mean(got["backend_cpu_ms"]),
            }
            for kind, got in kinds.items()
        }
        for side, kinds in samples.items()
    }


def _change(new: float, old: float) -> str:
    """This checkout against the baseline: the difference and its share of the baseline."""
    return f"{new - old:+.2f} ({(new - old) / old:+.0%})" if old else "n/a"


def render_comparison(
    results: dict[str, Any],
    baseline: str,
    *,
    machine: str,
    rounds: int,
    requests: int,
    conditions: tuple[str, str],
    calibrations: list[float],
) -> str:
    rows = []
    for kind in KINDS:
        for side in ("this checkout", baseline):
            got = results[side][kind]
            met = "met" if got["p50"] <= TARGET_P50_MS else "NOT met"
            rows.append(
                f"| {LABELS[kind]} | {side} | {got['p50']:.2f} | {got['p95']:.2f} "
                f"| {got['p99']:.2f} | {got['cpu_p50']:.2f} | {got['backend_cpu']:.2f} | {met} |"
            )
        new, old = results["this checkout"][kind], results[baseline][kind]
        rows.append(
            f"| {LABELS[kind]} | change | {_change(new['p50'], old['p50'])} | | "
            f"| {_change(new['cpu_p50'], old['cpu_p50'])} "
            f"| {_change(new['backend_cpu'], old['backend_cpu'])} | |"
        )
    table = "\n".join(rows)
    spread = (
        f"calibration loop before each of the {len(calibrations)} asks: min "
        f"{min(calibrations):.0f} / median {statistics.median(calibrations):.0f} / max "
        f"{max(calibrations):.0f} ms"
        if calibrations
        else "no calibration between asks"
    )
    return f"""{SECTION_TITLE}

`{COMMAND} --baseline {baseline} --rounds {rounds} --requests {requests} --write docs/benchmarks.md`
(each side in a worker process of its own, `scripts/bench/latency_worker.py`, with its own
embedded PostgreSQL 18 migrated by its own migrations and moto; the approvals function's
`lambda_handler` called in-process with payload v2.0 events, every request deciding a fresh
pending request; {rounds} rounds alternating the sides, {requests} timed decisions of each kind
per round and side). Machine: {machine}; {conditions[0]}; {conditions[1]};
{spread}. Target: p50 <= {TARGET_P50_MS} ms warm.

{HEADER}
|---|---|---|---|---|---|---|---|
{table}
"""


def write_on_top(path: Path, section: str) -> None:
    """Put this run at the top of its section of ``path`` and keep what the section held (the
    earlier runs and their analysis) under it; a missing section is appended."""
    title, body = section.split("\n", 1)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(title + "\n")
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    before, earlier = text[:start], text[start + len(title) + 1 :].lstrip("\n")
    path.write_text(f"{before}{title}\n{body.rstrip()}\n\n**Earlier runs:**\n\n{earlier}")


def main(argv: list[str] | None = None) -> int:
    from scripts.bench.api import calibration_ms, conditions, load_average  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="timed decisions of each kind")
    parser.add_argument("--warmup", type=int, default=50, help="untimed decisions of each kind")
    parser.add_argument("--write", type=Path, help="update this section of this file")
    parser.add_argument("--machine", default=machine_description(), help="describe the machine")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print cProfile's top N functions"
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        metavar="N",
        help="print the top N functions by share of CPU samples (scripts/bench/cpu_sampler.py)",
    )
    parser.add_argument(
        "--baseline", metavar="REF", help="compare with commit REF in the same run (interleaved)"
    )
    parser.add_argument(
        "--rounds", type=int, default=6, help="with --baseline: rounds per side (default 6)"
    )
    args = parser.parse_args(argv)
    os.environ.update(QUIET)
    # the handler's metrics are disabled: Powertools warns that none were published
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    started = (load_average(), calibration_ms())
    if args.baseline:
        calibrations: list[float] = []
        results = compare(
            args.baseline,
            rounds=args.rounds,
            requests=args.requests,
            warmup=args.warmup,
            calibrations=calibrations,
        )
        section = render_comparison(
            results,
            args.baseline,
            machine=args.machine,
            rounds=args.rounds,
            requests=args.requests,
            conditions=conditions(started),
            calibrations=calibrations,
        )
        worst = max(got["p50"] for got in results["this checkout"].values())
    else:
        samples = measure(args.requests, args.warmup, profile=args.profile, sample=args.sample)
        section = render(
            samples, machine=args.machine, requests=args.requests, conditions=conditions(started)
        )
        worst = max(statistics.median(values) for values in samples.wall_ms.values())
    print(section)
    if args.write:
        write_on_top(args.write, section)
    return 0 if worst <= TARGET_P50_MS else 1


if __name__ == "__main__":
    sys.exit(main())
