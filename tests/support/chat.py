"""Helpers for chat's tests: units of work as the runtime role or the owner, vectors, a
hand-built PDF and a scripted HTTP server standing in for a failing LLM provider."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID, uuid4

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row

from lambdas.chat.constants import EXACT_SEARCH_MAX_ROWS, HNSW_EF_SEARCH
from lambdas.chat.ingestion import KnowledgeUnitOfWork
from lambdas.chat.knowledge_repository import KnowledgeRepository, SearchQuery, retrieved
from lambdas.chat.models import (
    AnswerDraft,
    ChunkDraft,
    Completion,
    DocumentDraft,
    EmbeddedChunk,
    Message,
    RetrievedChunk,
)
from lambdas.chat.service import answered_event
from lambdas.chat.unit_of_work import ChatUnitOfWork
from lambdas.shared.db import Database
from lambdas.shared.scope import RequestScope
from tests.support.database import RUNTIME_ROLE, TestDatabase


def runtime_database(db: TestDatabase) -> Database:
    """The Lambdas' database handle, connecting as the runtime role (RLS applies)."""
    return db.lambda_database("chat-tests")


def runtime_uow_factory(db: TestDatabase) -> Callable[[UUID | None], KnowledgeUnitOfWork]:
    database = runtime_database(db)
    scope = RequestScope(lambda: database)
    return lambda tenant: KnowledgeUnitOfWork(scope, tenant)


def searched(
    db: TestDatabase, tenant_id: UUID, *, text: str, embedding: Sequence[float], model: str, k: int
) -> list[RetrievedChunk]:
    """The chat's retrieval as the runtime role: the search sent with BEGIN by
    ``ChatUnitOfWork.searching``, in a transaction of its own."""
    database = runtime_database(db)
    work = ChatUnitOfWork(RequestScope(lambda: database), tenant_id, default_monthly_tokens=1)
    try:
        with work.searching(text=text, embedding=embedding, model=model, k=k):
            return work.found
    finally:
        database.close()


def search_in(
    conn: Any,
    *,
    text: str,
    embedding: Sequence[float],
    model: str,
    k: int,
    ef_search: int = HNSW_EF_SEARCH,
    exact_rows: int = EXACT_SEARCH_MAX_ROWS,
) -> list[RetrievedChunk]:
    """The search statement the chat sends with BEGIN, run on an open transaction (e.g. one a
    test has given ``SET LOCAL`` planner settings), with the knobs the chat leaves at their
    defaults: the HNSW candidate list, and the most vectors a scope may hold to be ranked
    exactly."""
    query = SearchQuery(
        text=text, embedding=embedding, model=model, k=k, ef_search=ef_search, exact_rows=exact_rows
    )
    return retrieved(conn.execute(*query.statement()))


class OwnerUnitOfWork:
    """The operators' unit of work: the owner's connection, scoped like the Lambdas' one."""

    def __init__(self, db: TestDatabase, tenant_id: UUID | None) -> None:
        self._db = db
        self.tenant_id = tenant_id
        self.committed = False
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def __enter__(self) -> OwnerUnitOfWork:
        self._conn = psycopg.connect(self._db.owner_url, row_factory=dict_row)
        register_vector(self._conn)
        self._conn.execute(
            "SELECT set_config('app.current_tenant_id', %s, true)", (str(self.tenant_id or ""),)
        )
        self.knowledge = KnowledgeRepository(self._conn, self.tenant_id)
        return self

    def commit(self) -> None:
        assert self._conn is not None
        self._conn.commit()
        self.committed = True

    def __exit__(self, *exc: object) -> None:
        assert self._conn is not None
        self._conn.close()  # an uncommitted transaction is rolled back


def unit_vector(rng: random.Random, dimension: int = 1536) -> list[float]:
    values = [rng.gauss(0.0, 1.0) for _ in range(dimension)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def near(base: list[float], rng: random.Random, noise: float) -> list[float]:
    values = [b + rng.gauss(0.0, noise) for b in base]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


# Words of the stored chunks' texts: a few of them in each, so the full-text branch matches.
SEARCH_WORDS = ("contrato", "rescisão", "férias", "tributo", "imposto", "dados", "titular", "prazo")


def store_near(
    db: TestDatabase,
    tenant_id: UUID | None,
    centre: list[float],
    count: int,
    *,
    seed: int,
    model: str,
) -> UUID:
    """A ready document of ``count`` chunks near ``centre`` (tenant_id None: global), stored by
    the operators' path, each chunk holding a few of SEARCH_WORDS."""
    rng = random.Random(seed)
    with OwnerUnitOfWork(db, tenant_id) as uow:
        document_id = uow.knowledge.create_document(
            DocumentDraft(
                tenant_id=tenant_id,
                title=f"Documento {uuid4()}",
                source=f"test://{uuid4()}",
                file_sha256=uuid4().hex * 2,
            )
        )
        chunks = [
            EmbeddedChunk(
                ChunkDraft(i, " ".join(rng.choices(SEARCH_WORDS, k=4)), 4),
                near(centre, rng, 0.05),
            )
            for i in range(count)
        ]
        uow.knowledge.store_chunks([(document_id, chunks)], model=model)
        uow.commit()
    return document_id


def function_access(owner: psycopg.Connection[dict[str, Any]], function: str) -> dict[str, Any]:
    """Who may execute ``function`` (a regprocedure): the runtime role, and a new role that is
    not it; whether it runs as its owner, and who that is."""
    stranger = f"stranger_{uuid4().hex[:12]}"
    owner.execute(f'CREATE ROLE "{stranger}" NOLOGIN')
    try:
        row = owner.execute(
            """
            SELECT has_function_privilege(%(runtime)s, %(function)s, 'EXECUTE') AS runtime,
                   has_function_privilege(%(stranger)s, %(function)s, 'EXECUTE') AS stranger,
                   p.prosecdef AS definer, pg_get_userbyid(p.proowner) AS owner,
                   p.proconfig AS config
            FROM pg_proc AS p WHERE p.oid = %(function)s::regprocedure
            """,
            {"runtime": RUNTIME_ROLE, "stranger": stranger, "function": function},
        ).fetchone()
    finally:
        owner.execute(f'DROP ROLE "{stranger}"')
    assert row is not None
    return dict(row)


# A test's few rows: without these the planner would sort them rather than read an index.
INDEX_SCANS_ONLY = ("SET enable_seqscan = off", "SET enable_sort = off")


@contextmanager
def runtime_plans(
    db: TestDatabase, tenant_id: UUID, *, settings: Sequence[str] = ()
) -> Iterator[tuple[psycopg.Connection[dict[str, Any]], list[str]]]:
    """A connection acting as the runtime role in ``tenant_id``'s scope that reports the plan of
    every statement it runs, a function's nested statements included (auto_explain, as notices
    collected in the list), with ``settings`` (e.g. ``SET enable_seqscan = off``) applied first."""
    notices: list[str] = []
    with psycopg.connect(db.owner_url, row_factory=dict_row) as conn:
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary or ""))
        for statement in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_level = notice",
            *settings,
        ):
            conn.execute(statement)
        conn.execute(f'SET ROLE "{RUNTIME_ROLE}"')
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))
        yield conn, notices


def portuguese_pdf(paragraphs: list[str]) -> bytes:
    """A one-page PDF in Helvetica with WinAnsiEncoding (accents included), built by hand."""
    lines = []
    for i, text in enumerate(paragraphs):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        lines.append(f"BT /F1 11 Tf 50 {780 - 20 * i} Td ({escaped}) Tj ET")
    stream = "\n".join(lines).encode("cp1252")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@dataclass
class ScriptedProvider:
    """An HTTP server answering each request with the next scripted (status, body, delay);
    the last entry repeats. It counts the requests it received."""

    script: list[tuple[int, dict[str, Any], float]]
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple[int, dict[str, Any], float]:
        with self._lock:
            self.requests += 1
            return self.script[min(self.requests, len(self.script)) - 1]


@contextmanager
def scripted_provider(
    script: list[tuple[int, dict[str, Any], float]],
) -> Iterator[tuple[str, ScriptedProvider]]:
    provider = ScriptedProvider(script)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body, delay = provider.next()
            time.sleep(delay)
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("retry-after-ms", "10")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", provider
    finally:
        server.shutdown()
        server.server_close()


class ChatCalls:
    """A tenant's chat as the message route writes it, through ``ChatUnitOfWork`` as the runtime
    role (each call its own transaction): a session, a question committed with its statement, and
    an answer settled, stored and recorded in the statement sent with the COMMIT."""

    def __init__(self, db: TestDatabase, tenant_id: UUID, *, monthly_tokens: int = 1_000) -> None:
        database = runtime_database(db)
        self._scope = RequestScope(lambda: database, request_id="req-chat", actor_type="system")
        self._tenant_id = tenant_id
        self._monthly_tokens = monthly_tokens

    def work(self) -> ChatUnitOfWork:
        return ChatUnitOfWork(
            self._scope, self._tenant_id, default_monthly_tokens=self._monthly_tokens
        )

    def ask(self, user_id: UUID, content: str = "Qual o prazo do aviso?") -> Message:
        """A new session of ``user_id`` with one question in it, waiting for its answer."""
        with self.work() as work:
            session = work.chat.create_session(user_id)
            work.commit()
        with self.work() as work:
            return work.commit_question(
                message_id=uuid4(),
                session_id=session.id,
                user_id=user_id,
                content=content,
                status="answering",
            )

    def answer(
        self,
        question: Message,
        reservation_id: UUID,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        chunks: Sequence[RetrievedChunk] = (),
        user_id: UUID | None = None,
    ) -> Message:
        """``question`` answered, paid by ``reservation_id`` (``commit_answer``)."""
        completion = Completion("Segundo [1], 30 dias.", "m-1", prompt_tokens, completion_tokens)
        draft = AnswerDraft(
            answer_id=uuid4(),
            question=question,
            completion=completion,
            chunks=chunks,
            user_id=user_id,
            cost_estimate=Decimal("0.00011"),
            reservation_id=reservation_id,
        )
        with self.work() as work:
            return work.commit_answer(draft, answered_event(draft))
