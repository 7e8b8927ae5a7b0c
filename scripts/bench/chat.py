"""The chat function's share of ``scripts/bench/knowledge.py``: its cold import CPU and a chat
message end to end in-process, less the provider's own time.

Cold import: ``lambdas.chat.handler`` imported in fresh interpreters set up like the function
(``scripts/bench/imports.py``'s environment: the code, the base layer, the runtime's boto3) with
the chat layer (openai, pypdf) on the path as well, beside the same calibration loop.

A message: ``POST /api/chat/sessions/{id}/messages`` through ``lambda_handler`` with a real
payload v2.0 event for a member, on embedded PostgreSQL migrated by the migration Lambda, moto
for the secrets and the offline provider (an OpenAI-compatible server on loopback reached by the
real SDK). The gate, the token reservation, the retrieval over an ingested document, the
settlement and the answer's transaction all run; what the offline server spends handling its
two requests (the question's embedding and the completion) is measured inside the server and
subtracted. The SDK's own work and the loopback HTTP stay in our share. The hybrid search
(``KnowledgeRepository.search``, tuned separately with the knowledge base) is timed around
its call and reported on its own, so the message path's share and the search's can be combined.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAT_MODULE = "lambdas.chat.handler"
IMPORT_TARGET_MS = 600.0
MESSAGE_TARGET_MS = 15.0
DOCUMENT = (
    "O reembolso é concedido em até trinta dias após a compra do produto. "
    "O cliente deve apresentar a nota fiscal e o produto na embalagem original. "
) * 20
QUESTION = "Qual é o prazo de reembolso da compra?"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class ChatResults:
    import_ms: list[float]
    first_message_ms: list[float]
    calibration_ms: float
    openai_in_other_functions: list[str]
    total_ms: list[float]
    provider_ms: list[float]
    search_ms: list[float]
    load: str

    def render(self, machine: str) -> str:
        ours = [t - p for t, p in zip(self.total_ms, self.provider_ms, strict=True)]
        path = [t - s for t, s in zip(ours, self.search_ms, strict=True)]
        import_median = statistics.median(self.import_ms)
        ours_p50 = statistics.median(ours)
        leaked = ", ".join(self.openai_in_other_functions) or "none"
        return f"""## Chat function

`uv run --frozen --group bench python scripts/bench/knowledge.py --only chat --write
docs/benchmarks.md`. Machine: {machine}; load average (1, 5, 15 min) {self.load}.

| measure | result | target | |
|---|---|---|---|
| cold import CPU of `{CHAT_MODULE}` (median of {len(self.import_ms)} fresh interpreters, \
max {max(self.import_ms):.0f}) | {import_median:.0f} ms | <= {IMPORT_TARGET_MS:.0f} ms \
| {"met" if import_median <= IMPORT_TARGET_MS else "NOT met"} |
| the same in calibration loops (the loop's median {self.calibration_ms:.0f} ms in the same \
rounds) | {import_median / self.calibration_ms:.2f} | | |
| the import plus what the first message builds before its first I/O (settings, the message \
route's models), median | {statistics.median(self.first_message_ms):.0f} ms \
({statistics.median(self.first_message_ms) / self.calibration_ms:.2f} loops) | | |
| non-chat functions importing `openai` | {leaked} | none \
| {"met" if not self.openai_in_other_functions else "NOT met"} |
| a chat message end to end, p50 less the provider's own time ({len(ours)} messages) \
| {ours_p50:.2f} ms (p90 {_p90(ours):.2f}) | <= {MESSAGE_TARGET_MS:.0f} ms \
| {"met" if ours_p50 <= MESSAGE_TARGET_MS else "NOT met"} |
| the same less the hybrid search's time too (the message path alone), p50 \
| {statistics.median(path):.2f} ms (p90 {_p90(path):.2f}) | | |
| the hybrid search's time per message, p50 | {statistics.median(self.search_ms):.2f} ms | | |
| the same, p50 with the provider's time | {statistics.median(self.total_ms):.2f} ms | | |
| the provider's own time per message, p50 | {statistics.median(self.provider_ms):.2f} ms | | |

The calibration loop (a fixed 3M-step Python loop, as in the API section) took \
{self.calibration_ms:.0f} ms CPU during the imports. `openai` loads with the first gateway
(the first message or document of an execution environment), not with the handler.
"""


def _p90(samples: list[float]) -> float:
    return sorted(samples)[max(0, round(0.9 * len(samples)) - 1)]


# The import, then what the first message builds before its first I/O: the settings (the
# database's and chat's) and the message route's models (their validators and serializers;
# deferred ones are built here, as the route's first validation would).
FIRST_MESSAGE_PROBE = """
import time
started = time.process_time()
import lambdas.chat.handler
from lambdas.chat import schemas
from lambdas.shared.runtime import get_runtime
runtime = get_runtime()
runtime.api_settings, runtime.chat_settings
for model in (schemas.SendMessageRequest, schemas.MessageExchange, schemas.MessageResponse,
              schemas.VerdictResponse, schemas.CitationResponse):
    model.__pydantic_validator__.validate_python, model.__pydantic_serializer__.to_python
print((time.process_time() - started) * 1000)
"""


@dataclass(frozen=True)
class ImportTimes:
    import_ms: list[float]
    first_message_ms: list[float]
    calibration_ms: float
    openai_in_other_functions: list[str]


def chat_imports(runs: int) -> ImportTimes:
    """CPU of the chat handler's import in fresh interpreters set up like its function (the
    chat layer on the path too), and of the import plus what the first message builds before
    its first I/O, round-robin with the calibration loop; and the non-chat entry modules that
    import ``openai`` (there must be none)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from scripts.bench.imports import (  # noqa: PLC0415
        ROOT,
        _calibration_probe,
        _lambda_environment,
        _lambda_like_paths,
        _probe,
        function_modules,
    )
    from stacks.packaging.layers import CHAT_LAYER, HOST, build_layer  # noqa: PLC0415

    layer, runtime = _lambda_like_paths()
    chat_layer = build_layer(CHAT_LAYER, HOST) / "python"
    env = _lambda_environment(CHAT_MODULE, ROOT, layer, runtime)
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{chat_layer}"
    env["DB_SECRET_ARN"] = "bench-secret"  # noqa: S105 - a name; the settings require it
    _probe(CHAT_MODULE, env, ROOT)  # writes the bytecode caches
    times, first, calibration = [], [], []
    for _ in range(runs):
        calibration.append(_calibration_probe())
        times.append(_probe(CHAT_MODULE, env, ROOT)[0])
        first.append(
            float(
                subprocess.run(
                    [sys.executable, "-S", "-c", FIRST_MESSAGE_PROBE],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
        )
    leaked = []
    for module in function_modules():
        other = _lambda_environment(module, ROOT, layer, runtime)
        other["PYTHONPATH"] = f"{other['PYTHONPATH']}:{chat_layer}"  # openai importable
        if _probe(module, other, ROOT)[1]:
            leaked.append(module)
    return ImportTimes(times, first, statistics.median(calibration), leaked)


class ProviderClock:
    """Time spent in something (the offline server's requests, the search), summed per
    thread-safe window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spent = 0.0

    def add(self, seconds: float) -> None:
        with self._lock:
            self.spent += seconds

    def take(self) -> float:
        with self._lock:
            spent, self.spent = self.spent, 0.0
        return spent


@contextmanager
def timed_provider(clock: ProviderClock) -> Iterator[str]:
    """The offline provider, each request's handling timed into ``clock``; yields its URL."""
    from scripts.devstack import llm_server  # noqa: PLC0415

    handle = llm_server._Handler.do_POST

    def timed_post(self: Any) -> None:
        started = time.perf_counter()
        try:
            handle(self)
        finally:
            clock.add(time.perf_counter() - started)

    llm_server._Handler.do_POST = timed_post  # type: ignore[method-assign]
    server = llm_server.start_llm_server()
    try:
        yield server.base_url
    finally:
        server.stop()
        llm_server._Handler.do_POST = handle  # type: ignore[method-assign]


@contextmanager
def timed_search(clock: ProviderClock) -> Iterator[None]:
    """``KnowledgeRepository.search`` timed into ``clock`` around each call."""
    from lambdas.chat.knowledge_repository import KnowledgeRepository  # noqa: PLC0415

    search = KnowledgeRepository.search

    def timed(self: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return search(self, **kwargs)
        finally:
            clock.add(time.perf_counter() - started)

    KnowledgeRepository.search = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        KnowledgeRepository.search = search  # type: ignore[method-assign]


def _member(owner_url: str) -> tuple[dict[str, str], uuid.UUID]:
    import psycopg  # noqa: PLC0415

    from lambdas.migrations.memberships import GrantMembership, grant_membership  # noqa: PLC0415

    sub = uuid.uuid4()
    email = "member@bench.example.com"
    request = GrantMembership(
        tenant_slug="bench", tenant_name="Bench", cognito_sub=sub, email=email, role="member"
    )
    with psycopg.connect(owner_url) as conn, conn.transaction():
        granted = grant_membership(conn, request)
    claims = {"sub": str(sub), "email": email, "custom:tenant_id": str(granted.tenant_id)}
    return claims, granted.tenant_id


def _ingest_document(owner_url: str, tenant_id: uuid.UUID, base_url: str, api_key: str) -> None:
    """A tenant document through the real pipeline (offline embeddings), to be retrieved."""
    import psycopg  # noqa: PLC0415
    from pgvector.psycopg import register_vector  # noqa: PLC0415
    from psycopg.rows import dict_row  # noqa: PLC0415

    from lambdas.chat.ingestion import IngestionPipeline, sha256_hex  # noqa: PLC0415
    from lambdas.chat.llm import LlmGateway  # noqa: PLC0415
    from lambdas.chat.models import DocumentDraft  # noqa: PLC0415
    from scripts.ingest_documents import ConnectionUnitOfWork  # noqa: PLC0415

    gateway = LlmGateway(
        api_key=api_key,
        base_url=base_url,
        chat_model="offline-chat",
        embedding_model="offline-embedding",
        timeout_s=10,
        max_retries=0,
    )
    with psycopg.connect(owner_url, row_factory=dict_row) as conn:
        register_vector(conn)
        pipeline = IngestionPipeline(lambda t: ConnectionUnitOfWork(conn, t), gateway)
        data = DOCUMENT.encode()
        draft = DocumentDraft(
            tenant_id=tenant_id,
            title="Política de reembolso",
            source="bench://reembolso",
            file_sha256=sha256_hex(data),
        )
        document = pipeline.ingest(draft, data)
        if document.status != "ready":
            raise SystemExit(f"the bench document was not ingested: {document.error}")


def _event(claims: dict[str, str], method: str, path: str, key: str, body: bytes) -> Any:
    from lambdas.shared.routes import route_for_key  # noqa: PLC0415
    from scripts.devstack.gateway import build_event  # noqa: PLC0415

    route = route_for_key(f"{method} {key}")
    if route is None:
        raise LookupError(key)
    params = {}
    if "{session_id}" in key:
        params["session_id"] = path.split("/")[4]
    return build_event(
        route=route,
        method=method,
        url_path=path,
        query="",
        headers={"host": "127.0.0.1", "content-type": "application/json"},
        body=body,
        path_params=params,
        claims=claims,
        request_id=str(uuid.uuid4()),
        source_ip="127.0.0.1",
    )


@dataclass(frozen=True)
class ChatBench:
    """A migrated database with a member's session and an ingested document, and one call that
    sends the bench question through ``lambda_handler``."""

    event: Callable[[], dict[str, Any]]
    send: Callable[[dict[str, Any]], dict[str, Any]]
    provider: ProviderClock
    search: ProviderClock


@contextmanager
def chat_bench() -> Iterator[ChatBench]:
    """Embedded PostgreSQL migrated by the migration Lambda, moto, the offline provider, a
    member with an open session and a ready document; yields the message sender."""
    import json  # noqa: PLC0415

    import psycopg  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    from scripts.devstack.gateway import LambdaContextStub  # noqa: PLC0415
    from scripts.devstack.llm_server import OFFLINE_API_KEY  # noqa: PLC0415
    from scripts.devstack.postgres import EmbeddedPostgres, free_port  # noqa: PLC0415
    from scripts.devstack.stack import (  # noqa: PLC0415
        LOCAL_AWS_ENV,
        QUIET_POWERTOOLS_ENV,
        environment,
        provision_and_migrate,
        reset_lambda_caches,
    )

    clock, searching = ProviderClock(), ProviderClock()
    with (
        tempfile.TemporaryDirectory() as tmp,
        timed_provider(clock) as base_url,
        timed_search(searching),
    ):
        server = EmbeddedPostgres(Path(tmp) / "pg", port=free_port())
        server.start()
        try:
            with psycopg.connect(server.connection.url("postgres"), autocommit=True) as conn:
                conn.execute('CREATE DATABASE "alquimista"')
            llm_env = {"LLM_BASE_URL": base_url, "LLM_API_KEY": OFFLINE_API_KEY}
            with (
                environment({**LOCAL_AWS_ENV, **QUIET_POWERTOOLS_ENV, **llm_env}),
                mock_aws(),
            ):
                provision_and_migrate("dev", server.connection, dbname="alquimista")
                owner_url = server.connection.url("alquimista")
                claims, tenant_id = _member(owner_url)
                _ingest_document(owner_url, tenant_id, base_url, OFFLINE_API_KEY)
                reset_lambda_caches()
                from lambdas.chat.handler import lambda_handler  # noqa: PLC0415

                context = LambdaContextStub(function_name="bench-chat")
                opened = lambda_handler(
                    _event(
                        claims,
                        "POST",
                        "/api/chat/sessions",
                        "/api/chat/sessions",
                        b'{"title": "bench"}',
                    ),
                    context,
                )
                if opened["statusCode"] != 201:
                    raise SystemExit(f"could not open a session: {opened}")
                session_id = json.loads(opened["body"])["id"]
                path = f"/api/chat/sessions/{session_id}/messages"
                body = json.dumps({"content": QUESTION}).encode()
                key = "/api/chat/sessions/{session_id}/messages"

                def event() -> dict[str, Any]:
                    built: dict[str, Any] = _event(claims, "POST", path, key, body)
                    return built

                def send(message: dict[str, Any]) -> dict[str, Any]:
                    answer: dict[str, Any] = lambda_handler(message, context)
                    if answer["statusCode"] != 201:
                        raise SystemExit(f"the message was not answered: {answer}")
                    return answer

                yield ChatBench(event, send, clock, searching)
        finally:
            server.destroy()


def chat_messages(messages: int, warmup: int) -> tuple[list[float], list[float], list[float]]:
    """Wall time of each message through the handler, the provider's share of it and the
    search's (ms). The event is built outside the timed window, as API Gateway builds it."""
    totals, provider, search = [], [], []
    with chat_bench() as bench:
        for _ in range(warmup):
            bench.send(bench.event())
        for _ in range(messages):
            event = bench.event()
            bench.provider.take()
            bench.search.take()
            started = time.perf_counter()
            bench.send(event)
            elapsed = time.perf_counter() - started
            totals.append(elapsed * 1000)
            provider.append(bench.provider.take() * 1000)
            search.append(bench.search.take() * 1000)
    return totals, provider, search


def measure_chat(*, messages: int, imports: int) -> ChatResults:
    import os  # noqa: PLC0415

    print("chat: cold imports", flush=True)
    imported = chat_imports(imports)
    print("chat: messages end to end", flush=True)
    totals, provider, search = chat_messages(messages, warmup=max(messages // 10, 5))
    one, five, fifteen = os.getloadavg()
    return ChatResults(
        import_ms=imported.import_ms,
        first_message_ms=imported.first_message_ms,
        calibration_ms=imported.calibration_ms,
        openai_in_other_functions=imported.openai_in_other_functions,
        total_ms=totals,
        provider_ms=provider,
        search_ms=search,
        load=f"{one:.2f}, {five:.2f}, {fifteen:.2f}",
    )


@dataclass
class Exchanges:
    """psycopg's network exchanges (each a round trip: a send, then waiting for its results)
    and the commits among them, counted from inside the connection class."""

    round_trips: int = 0
    commits: int = 0


@contextmanager
def counted_exchanges() -> Iterator[Exchanges]:
    import psycopg  # noqa: PLC0415

    counts = Exchanges()
    wait, commit = psycopg.Connection.wait, psycopg.Connection.commit

    def counted_wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.round_trips += 1
        return wait(self, *args, **kwargs)

    def counted_commit(self: Any) -> None:
        counts.commits += 1
        commit(self)

    psycopg.Connection.wait = counted_wait  # type: ignore[method-assign]
    psycopg.Connection.commit = counted_commit  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        psycopg.Connection.wait = wait  # type: ignore[method-assign]
        psycopg.Connection.commit = commit  # type: ignore[method-assign]


def profile_messages(messages: int, warmup: int, top: int) -> str:
    """Round trips and commits per warm message, and cProfile's view of ``messages`` of them
    (cumulative time, the ``top`` entries)."""
    import cProfile  # noqa: PLC0415
    import io  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    with chat_bench() as bench:
        for _ in range(warmup):
            bench.send(bench.event())
        events = [bench.event() for _ in range(messages)]
        with counted_exchanges() as counts:
            for event in events[:10]:
                bench.send(event)
        profiler = cProfile.Profile()
        profiler.enable()
        for event in events[10:]:
            bench.send(event)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return (
        f"per message: {counts.round_trips / 10:.1f} round trips, "
        f"{counts.commits / 10:.1f} commits\n{out.getvalue()}"
    )


def compare_flush(messages: int, warmup: int) -> dict[str, list[float]]:
    """Messages alternating between the reservation committed without waiting for the WAL
    flush (as shipped) and with the wait (``commit`` in place of ``commit_unflushed``), in one
    run: each side's time less the provider's (ms)."""
    from lambdas.chat.unit_of_work import ChatUnitOfWork  # noqa: PLC0415

    unflushed = ChatUnitOfWork.commit_unflushed
    sides: dict[str, list[float]] = {"unflushed": [], "flushed": []}
    with chat_bench() as bench:
        for _ in range(warmup):
            bench.send(bench.event())
        try:
            for i in range(2 * messages):
                side = "flushed" if i % 2 else "unflushed"
                ChatUnitOfWork.commit_unflushed = (  # type: ignore[method-assign]
                    ChatUnitOfWork.commit if side == "flushed" else unflushed
                )
                event = bench.event()
                bench.provider.take()
                started = time.perf_counter()
                bench.send(event)
                elapsed = time.perf_counter() - started
                sides[side].append((elapsed - bench.provider.take()) * 1000)
        finally:
            ChatUnitOfWork.commit_unflushed = unflushed  # type: ignore[method-assign]
    return sides


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="timed chat messages")
    parser.add_argument("--imports", type=int, default=7, help="cold-import interpreters")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="count round trips and commits per warm message and print cProfile's top entries",
    )
    parser.add_argument("--top", type=int, default=40, help="cProfile entries (--profile)")
    parser.add_argument(
        "--compare-flush",
        action="store_true",
        help="alternate messages with the reservation's commit waiting for the WAL flush or not",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    if args.profile:
        print(profile_messages(args.messages + 10, warmup=10, top=args.top))
        return 0
    if args.compare_flush:
        sides = compare_flush(args.messages, warmup=10)
        for side, samples in sides.items():
            print(
                f"{side}: p50 {statistics.median(samples):.2f} ms, p90 {_p90(samples):.2f} ms "
                f"less the provider ({len(samples)} messages)"
            )
        return 0
    from scripts.bench.support import machine_description  # noqa: PLC0415

    print(measure_chat(messages=args.messages, imports=args.imports).render(machine_description()))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
