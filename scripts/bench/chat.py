"""The chat function's share of ``scripts/bench/knowledge.py``: its cold import CPU and a chat
message end to end in-process, less the provider's own time.

Cold import: ``lambdas.chat.handler`` imported in fresh interpreters set up like the function
(``scripts/bench/imports.py``'s environment: the code, the base layer, the runtime's boto3) with
the chat layer (openai, pypdf) on the path as well, beside the same calibration loop.

A message: ``POST /api/chat/sessions/{id}/messages`` through ``lambda_handler`` with a real
payload v2.0 event for a member, on embedded PostgreSQL migrated by the migration Lambda, moto
for the secrets and the offline provider (an OpenAI-compatible server on loopback, in a process
of its own, reached by the real SDK). The gate, the token reservation, the retrieval over an
ingested document, the settlement and the answer's transaction all run.

The provider's own time is measured two ways on the same messages:

- on the wire (the definition since 2026-12-02 09:00): the time our side spends inside the
  socket's ``send`` and ``recv`` (from our request's bytes handed over to the provider's
  response bytes received), as a remote provider's latency would be seen. On loopback the
  provider, woken by our bytes, can take the core from us inside our ``send``: that is its time
  too. Our SDK work (building the request, h11's writing and parsing between those calls, the
  response's models) stays ours;
- in the server's handler (the definition before): ``do_POST`` of the offline server, timed
  inside it. It leaves the server's own HTTP stack (its request-line and header parsing) in our
  share.

Until 2026-12-02 the server ran in our process, on a thread: its Python work then held the
interpreter's lock while our thread waited for it (between our request's send and our
``recv``, so on no clock but ours), and its handler's clock ran on while it waited for the lock
during our work. Neither clock was the provider's time; in a process of its own both are.

The hybrid search (tuned separately with the knowledge base) is timed around the round trip it
shares with BEGIN (``ChatUnitOfWork.searching``), or around its call in older code, and reported
on its own, so the message path's share and the search's can be combined.

``--baseline REF`` runs this checkout and commit REF side by side, each in a worker process of
its own (this file run with ``--worker --code PATH``: the bench code is this checkout's, the
application code PATH's), rounds interleaved so that load weighs on both alike.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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
class MessageSamples:
    """Per message (ms): the wall time through the handler, the provider's time on the wire
    (the current definition), in the offline server's handler (the old one), and the hybrid
    search's."""

    total_ms: list[float] = field(default_factory=list)
    wire_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    search_ms: list[float] = field(default_factory=list)

    def extend(self, other: Mapping[str, list[float]]) -> None:
        for name in ("total_ms", "wire_ms", "server_ms", "search_ms"):
            getattr(self, name).extend(float(v) for v in other[name])

    def as_dict(self) -> dict[str, list[float]]:
        return {
            "total_ms": self.total_ms,
            "wire_ms": self.wire_ms,
            "server_ms": self.server_ms,
            "search_ms": self.search_ms,
        }

    @property
    def ours(self) -> list[float]:
        """Less the provider's time on the wire (the current definition)."""
        return [t - w for t, w in zip(self.total_ms, self.wire_ms, strict=True)]

    @property
    def ours_old(self) -> list[float]:
        """Less the offline server's handler time (the definition before 2026-12-02 09:00)."""
        return [t - s for t, s in zip(self.total_ms, self.server_ms, strict=True)]

    @property
    def path(self) -> list[float]:
        """Less the provider's time on the wire and the hybrid search's."""
        return [o - s for o, s in zip(self.ours, self.search_ms, strict=True)]


@dataclass(frozen=True)
class ChatResults:
    import_ms: list[float]
    first_message_ms: list[float]
    calibration_ms: float
    message_calibration_ms: float
    openai_in_other_functions: list[str]
    samples: MessageSamples
    exchanges: Exchanges
    load: str

    def render(self, machine: str) -> str:
        # imported here, not at the top: a --worker process runs this file with another
        # checkout's code first on sys.path, and that checkout's scripts package may lack it
        from scripts.bench.support import KEPT_BELOW  # noqa: PLC0415

        s = self.samples
        ours, old = s.ours, s.ours_old
        import_median = statistics.median(self.import_ms)
        ours_p50 = statistics.median(ours)
        leaked = ", ".join(self.openai_in_other_functions) or "none"
        return f"""## Chat function

`uv run --frozen --group bench python scripts/bench/knowledge.py --only chat --write
docs/benchmarks.md` (the side-by-side comparison with another commit: `uv run --frozen --group
bench python -m scripts.bench.chat --baseline REF`). Machine: {machine}; load average (1, 5, 15
min) {self.load}; the calibration loop {self.calibration_ms:.0f} ms during the imports,
{self.message_calibration_ms:.0f} ms around the messages.

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
| a chat message end to end, p50 less the provider's own time on the wire ({len(ours)} \
messages) | {ours_p50:.2f} ms (p90 {_p90(ours):.2f}) | <= {MESSAGE_TARGET_MS:.0f} ms \
| {"met" if ours_p50 <= MESSAGE_TARGET_MS else "NOT met"} |
| the same less only the offline server's handler time (the definition before 2026-12-02), \
p50 | {statistics.median(old):.2f} ms (p90 {_p90(old):.2f}) | | |
| the same less the hybrid search's time too (the message path alone), p50 \
| {statistics.median(s.path):.2f} ms (p90 {_p90(s.path):.2f}) | | |
| the hybrid search's time per message, p50 | {statistics.median(s.search_ms):.2f} ms | | |
| the same, p50 with the provider's time | {statistics.median(s.total_ms):.2f} ms | | |
| the provider's own time per message on the wire, p50 | {statistics.median(s.wire_ms):.2f} \
ms | | |
| the offline server's handler time per message, p50 | {statistics.median(s.server_ms):.2f} \
ms | | |
| per message: PostgreSQL round trips, statements, commits | {self.exchanges.summary()} | | |

`openai` loads with the first gateway (the first message or document of an execution
environment), not with the handler.
{KEPT_BELOW}
"""


def write_chat_section(path: Path, section: str) -> None:
    """Replace the generated part of the chat section and keep the notes below its
    ``KEPT_BELOW`` line (``scripts.bench.support.write_section``)."""
    from scripts.bench.support import write_section  # noqa: PLC0415 (see render)

    write_section(path, section)


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


class HandlerClock:
    """The offline server's handler time, summed in its own process (shared memory)."""

    def __init__(self, spent: Any) -> None:
        self._spent = spent

    def take(self) -> float:
        with self._spent.get_lock():
            spent, self._spent.value = self._spent.value, 0.0
        return float(spent)


def _serve_timed(spent: Any, ready: Any) -> None:
    """The offline provider's process: each request's handling (``do_POST``) timed into
    ``spent``; its URL put on ``ready``; serves until terminated."""
    from scripts.devstack import llm_server  # noqa: PLC0415

    handle = llm_server._Handler.do_POST

    def timed_post(self: Any) -> None:
        started = time.perf_counter()
        try:
            handle(self)
        finally:
            with spent.get_lock():
                spent.value += time.perf_counter() - started

    llm_server._Handler.do_POST = timed_post  # type: ignore[method-assign]
    server = llm_server.start_llm_server()
    ready.put(server.base_url)
    server.thread.join()


@contextmanager
def timed_provider() -> Iterator[tuple[str, HandlerClock]]:
    """The offline provider in a process of its own, as a provider is: in ours, its Python
    work took the interpreter's lock from our thread (our time ran slower while it worked, and
    its handler's clock kept running while it waited for the lock). Yields its URL and the
    clock of its handler's time."""
    import multiprocessing  # noqa: PLC0415

    context = multiprocessing.get_context("spawn")
    spent = context.Value("d", 0.0)
    ready = context.Queue()
    process = context.Process(target=_serve_timed, args=(spent, ready), daemon=True)
    process.start()
    try:
        base_url: str = ready.get(timeout=120)
        yield base_url, HandlerClock(spent)
    finally:
        process.terminate()
        process.join(timeout=10)


@contextmanager
def timed_wire(clock: ProviderClock) -> Iterator[None]:
    """The provider's time as our side of the wire sees it: the time the SDK's HTTP connections
    (httpcore's sync stream) spend inside the socket's ``send`` and ``recv``, timed into
    ``clock``. A ``recv`` waits for the provider's bytes; a ``send`` takes microseconds, unless
    the provider, woken by our request's bytes on loopback, takes the core from us inside it
    (so it is counted too). Our own work between them (h11's writing and parsing) stays ours."""
    from httpcore2._backends.sync import SyncStream  # noqa: PLC0415

    read, write = SyncStream.read, SyncStream.write

    def timed_read(self: Any, max_bytes: int, timeout: float | None = None) -> bytes:
        started = time.perf_counter()
        try:
            return read(self, max_bytes, timeout)
        finally:
            clock.add(time.perf_counter() - started)

    def timed_write(self: Any, buffer: bytes, timeout: float | None = None) -> None:
        started = time.perf_counter()
        try:
            write(self, buffer, timeout)
        finally:
            clock.add(time.perf_counter() - started)

    SyncStream.read = timed_read  # type: ignore[method-assign]
    SyncStream.write = timed_write  # type: ignore[method-assign]
    try:
        yield
    finally:
        SyncStream.read = read  # type: ignore[method-assign]
        SyncStream.write = write  # type: ignore[method-assign]


@contextmanager
def timed_search(clock: ProviderClock) -> Iterator[None]:
    """The hybrid search timed into ``clock``, wherever the code under test runs it: around the
    opening of a unit of work that sends its search with BEGIN (the chat's retrieval since
    2026-12-02 15:00 UTC, ``ChatUnitOfWork.searching``, or ``SearchOnBegin`` in code of that
    afternoon: that round trip also carries BEGIN and the tenant's scoping), and around each
    ``KnowledgeRepository.search`` call (the retrieval before, for ``--baseline``)."""
    from lambdas.chat import knowledge_repository, unit_of_work  # noqa: PLC0415

    restore: list[Callable[[], None]] = []
    search = getattr(knowledge_repository.KnowledgeRepository, "search", None)
    if search is not None:

        def timed(self: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return search(self, **kwargs)
            finally:
                clock.add(time.perf_counter() - started)

        knowledge_repository.KnowledgeRepository.search = timed  # type: ignore[attr-defined]
        restore.append(lambda: setattr(knowledge_repository.KnowledgeRepository, "search", search))
    opening_with_search = getattr(knowledge_repository, "SearchOnBegin", None)
    if opening_with_search is None and hasattr(unit_of_work.ChatUnitOfWork, "searching"):
        opening_with_search = unit_of_work.ChatUnitOfWork
    if opening_with_search is not None:
        enter = opening_with_search.__enter__

        def timed_enter(self: Any) -> Any:
            if getattr(self, "_search", None) is None:
                return enter(self)
            started = time.perf_counter()
            try:
                return enter(self)
            finally:
                clock.add(time.perf_counter() - started)

        opening_with_search.__enter__ = timed_enter
        restore.append(lambda: setattr(opening_with_search, "__enter__", enter))
    try:
        yield
    finally:
        for undo in restore:
            undo()


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
    provider: HandlerClock  # the offline server's handler time (the old definition)
    search: ProviderClock
    wire: ProviderClock  # the provider's time on the wire (the current definition)


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

    searching, wire = ProviderClock(), ProviderClock()
    with (
        tempfile.TemporaryDirectory() as tmp,
        timed_provider() as (base_url, clock),
        timed_search(searching),
        timed_wire(wire),
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

                yield ChatBench(event, send, clock, searching, wire)
        finally:
            server.destroy()


def chat_messages(bench: ChatBench, messages: int, warmup: int) -> MessageSamples:
    """Each message's wall time through the handler, the provider's share of it (on the wire
    and in the server's handler) and the search's (ms). The event is built outside the timed
    window, as API Gateway builds it."""
    samples = MessageSamples()
    for _ in range(warmup):
        bench.send(bench.event())
    for _ in range(messages):
        event = bench.event()
        for clock in (bench.wire, bench.provider, bench.search):
            clock.take()
        started = time.perf_counter()
        bench.send(event)
        elapsed = time.perf_counter() - started
        samples.total_ms.append(elapsed * 1000)
        samples.wire_ms.append(bench.wire.take() * 1000)
        samples.server_ms.append(bench.provider.take() * 1000)
        samples.search_ms.append(bench.search.take() * 1000)
    return samples


def measure_chat(*, messages: int, imports: int) -> ChatResults:
    import os  # noqa: PLC0415

    print("chat: cold imports", flush=True)
    imported = chat_imports(imports)
    print("chat: messages end to end", flush=True)
    with chat_bench() as bench:
        calibration = [calibration_ms()]
        samples = chat_messages(bench, messages, warmup=max(messages // 10, 5))
        calibration.append(calibration_ms())
        exchanges = count_exchanges(bench, 10)
    one, five, fifteen = os.getloadavg()
    return ChatResults(
        import_ms=imported.import_ms,
        first_message_ms=imported.first_message_ms,
        calibration_ms=imported.calibration_ms,
        message_calibration_ms=statistics.median(calibration),
        openai_in_other_functions=imported.openai_in_other_functions,
        samples=samples,
        exchanges=exchanges,
        load=f"{one:.2f}, {five:.2f}, {fifteen:.2f}",
    )


def calibration_ms() -> float:
    """CPU milliseconds of the fixed 3M-step Python loop (how fast this CPU is right now)."""
    started = time.process_time()
    sum(i * i for i in range(3_000_000))
    return (time.process_time() - started) * 1000


@dataclass
class Exchanges:
    """What PostgreSQL was sent for ``messages`` messages, read from libpq's protocol trace of
    the function's connection: round trips (each time the client, having sent, reads the
    server's answer), statements (Execute and simple Query messages) and commits."""

    messages: int = 0
    round_trips: int = 0
    statements: int = 0
    commits: int = 0

    def summary(self) -> str:
        n = max(self.messages, 1)
        return f"{self.round_trips / n:.1f}, {self.statements / n:.1f}, {self.commits / n:.1f}"

    def add_trace(self, lines: Iterator[str]) -> None:
        last = ""
        for line in lines:
            direction, _, kind, *rest = [*line.rstrip("\n").split("\t"), ""]
            if direction == "B" and last == "F":
                self.round_trips += 1
            if direction == "F" and kind in {"Execute", "Query"}:
                self.statements += 1
            if direction == "B" and kind == "CommandComplete" and '"COMMIT"' in rest[0]:
                self.commits += 1
            last = direction or last


def count_exchanges(bench: ChatBench, messages: int) -> Exchanges:
    """Round trips, statements and commits of ``messages`` warm messages (libpq's trace of the
    execution environment's connection)."""
    import psycopg  # noqa: PLC0415

    from lambdas.shared.runtime import get_runtime  # noqa: PLC0415

    bench.send(bench.event())
    conn = get_runtime().database.connection()
    counts = Exchanges(messages=messages)
    with tempfile.NamedTemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
        )
        try:
            for _ in range(messages):
                bench.send(bench.event())
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        counts.add_trace(iter(trace))
    return counts


def profile_messages(messages: int, warmup: int, top: int) -> str:
    """Round trips, statements and commits per warm message, and cProfile's view of
    ``messages`` of them (cumulative time, the ``top`` entries)."""
    import cProfile  # noqa: PLC0415
    import io  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    with chat_bench() as bench:
        for _ in range(warmup):
            bench.send(bench.event())
        counts = count_exchanges(bench, 10)
        events = [bench.event() for _ in range(messages)]
        profiler = cProfile.Profile()
        profiler.enable()
        for event in events:
            bench.send(event)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return (
        "per message: PostgreSQL round trips, statements, commits: "
        f"{counts.summary()}\n{out.getvalue()}"
    )


# -- the same-run comparison with another commit ------------------------------------------


def serve(answers: IO[str]) -> None:
    """The worker's loop (``--worker``): a bench stack over the code on ``sys.path``; one JSON
    ask a line on stdin, one JSON answer a line on ``answers``."""
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    with chat_bench() as bench:
        for _ in range(10):
            bench.send(bench.event())
        answers.write(json.dumps({"ready": True}) + "\n")
        answers.flush()
        for line in sys.stdin:
            ask = json.loads(line)
            if "count" in ask:
                counted = count_exchanges(bench, int(ask["count"]))
                answer: dict[str, Any] = {
                    "round_trips": counted.round_trips,
                    "statements": counted.statements,
                    "commits": counted.commits,
                    "messages": counted.messages,
                }
            else:
                answer = chat_messages(bench, int(ask["messages"]), warmup=2).as_dict()
            answers.write(json.dumps(answer) + "\n")
            answers.flush()


class _Worker:
    """A ``--worker`` process measuring the code of one checkout."""

    def __init__(self, code: Path, log: Path) -> None:
        import subprocess  # noqa: PLC0415
        import sys  # noqa: PLC0415

        self._log = log
        with log.open("w") as errors:
            self._process = subprocess.Popen(
                [sys.executable, __file__, "--worker", "--code", str(code)],
                cwd=code,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        self.ask({})

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        import json  # noqa: PLC0415

        stdin, stdout = self._process.stdin, self._process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the worker's pipes are closed")
        if message:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        line = stdout.readline()
        if not line:
            tail = self._log.read_text()[-3000:]
            raise SystemExit(f"the worker exited ({self._process.wait()}):\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=120)


@dataclass(frozen=True)
class Comparison:
    sides: dict[str, MessageSamples]
    exchanges: dict[str, Exchanges]
    calibration_ms: list[float]
    load: list[str]


def compare(baseline: str, *, rounds: int, messages: int) -> Comparison:
    """This checkout and ``baseline``, each in a worker of its own, ``rounds`` interleaved
    rounds of ``messages`` messages (the side measured first alternating too); the calibration
    loop and the load average are taken between rounds."""
    import os  # noqa: PLC0415

    from scripts.bench.api import _worktree  # noqa: PLC0415
    from scripts.bench.imports import ROOT  # noqa: PLC0415

    sides: dict[str, MessageSamples] = {
        "this checkout": MessageSamples(),
        baseline: MessageSamples(),
    }
    exchanges: dict[str, Exchanges] = {}
    calibration, load = [], []
    with _worktree(baseline) as old, tempfile.TemporaryDirectory() as logs:
        codes = {"this checkout": ROOT, baseline: old}
        workers = {
            name: _Worker(code, Path(logs) / f"worker-{n}.log")
            for n, (name, code) in enumerate(codes.items())
        }
        try:
            for name, worker in workers.items():
                counted = worker.ask({"count": 10})
                exchanges[name] = Exchanges(**counted)
            for round_no in range(rounds):
                order = list(workers.items())
                for name, worker in order if round_no % 2 == 0 else reversed(order):
                    sides[name].extend(worker.ask({"messages": messages}))
                calibration.append(calibration_ms())
                one, five, fifteen = os.getloadavg()
                load.append(f"{one:.1f}/{five:.1f}/{fifteen:.1f}")
        finally:
            for worker in workers.values():
                worker.close()
    return Comparison(sides, exchanges, calibration, load)


def render_comparison(result: Comparison, baseline: str, rounds: int, messages: int) -> str:
    names = list(result.sides)
    rows: list[tuple[str, Callable[[MessageSamples], float]]] = [
        ("p50 less the provider's time on the wire (ms)", lambda s: statistics.median(s.ours)),
        ("p90 of the same (ms)", lambda s: _p90(s.ours)),
        (
            "p50 less only the offline server's handler time (the old definition, ms)",
            lambda s: statistics.median(s.ours_old),
        ),
        ("p50 less the wire and the hybrid search (ms)", lambda s: statistics.median(s.path)),
        ("p50 with the provider's time (ms)", lambda s: statistics.median(s.total_ms)),
        ("the provider on the wire, p50 (ms)", lambda s: statistics.median(s.wire_ms)),
        ("the offline server's handler, p50 (ms)", lambda s: statistics.median(s.server_ms)),
        ("the hybrid search, p50 (ms)", lambda s: statistics.median(s.search_ms)),
    ]
    lines = [
        f"this checkout vs {baseline}: {rounds} interleaved rounds of {messages} messages a "
        f"side; calibration loop {min(result.calibration_ms):.0f}-"
        f"{max(result.calibration_ms):.0f} ms (median "
        f"{statistics.median(result.calibration_ms):.0f}); load {', '.join(result.load)}",
        "",
        f"| per message | {' | '.join(names)} |",
        "|---|" + "---|" * len(names),
    ]
    for label, value in rows:
        cells = " | ".join(f"{value(result.sides[n]):.2f}" for n in names)
        lines.append(f"| {label} | {cells} |")
    cells = " | ".join(result.exchanges[n].summary() for n in names)
    lines.append(f"| PostgreSQL round trips, statements, commits | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="timed chat messages")
    parser.add_argument("--imports", type=int, default=7, help="cold-import interpreters")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="count round trips, statements and commits per warm message; print cProfile's top",
    )
    parser.add_argument("--top", type=int, default=40, help="cProfile entries (--profile)")
    parser.add_argument(
        "--baseline", metavar="REF", help="compare with commit REF in the same run (interleaved)"
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="with --baseline: rounds per side (default 10)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    if args.worker:
        # the bench is this file; the application (lambdas, scripts.devstack) is --code's
        sys.path.insert(0, str(args.code.resolve()))
        answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        sys.stdout = sys.stderr  # nothing the application prints can break the protocol
        serve(answers)
        return 0
    if args.profile:
        print(profile_messages(args.messages, warmup=10, top=args.top))
        return 0
    if args.baseline:
        per_round = max(args.messages // args.rounds, 1)
        result = compare(args.baseline, rounds=args.rounds, messages=per_round)
        print(render_comparison(result, args.baseline, args.rounds, per_round))
        return 0
    from scripts.bench.support import machine_description  # noqa: PLC0415

    print(measure_chat(messages=args.messages, imports=args.imports).render(machine_description()))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
