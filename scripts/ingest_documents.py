"""Ingest documents into the knowledge base in bulk (operators).

  uv run python scripts/ingest_documents.py docs/leis/ manual.pdf --global
  uv run python scripts/ingest_documents.py contratos/ --tenant acme --dry-run

Files (txt, md, html, pdf; folders are walked) are extracted, chunked and embedded through the
configured provider (LLM_BASE_URL / LLM_API_KEY; the offline server in `make dev`), then stored
in batches: rows travel by COPY ... (FORMAT BINARY) into a staging table and are inserted with
INSERT ... SELECT, each batch in one transaction (all or nothing), on --writers connections in
the background while the next documents are registered.

Resumable: a file whose SHA-256 is already ready in the scope is skipped, and a document left
processing or failed by a crashed run is restarted. --dry-run changes nothing and shows what
would be ingested and what would be refused as a duplicate (and why).

Connects with DATABASE_URL (or --database-url) as the schema owner: global documents are
written only by operators. Exit status: 0 when every file was ingested or skipped, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lambdas.chat.errors import DuplicateDocument  # noqa: E402
from lambdas.chat.extraction import CONTENT_TYPES, content_type_for  # noqa: E402
from lambdas.chat.ingestion import Embedder, IngestionPipeline, sha256_hex  # noqa: E402
from lambdas.chat.knowledge_repository import KnowledgeRepository  # noqa: E402
from lambdas.chat.llm import LlmGateway  # noqa: E402
from lambdas.chat.models import DocumentDraft, EmbeddedChunk  # noqa: E402
from lambdas.shared.errors import AppError  # noqa: E402
from lambdas.shared.settings import LlmSettings  # noqa: E402

Connection = psycopg.Connection[dict[str, Any]]


class ConnectionUnitOfWork:
    """One transaction on the operator's connection, scoped to a tenant (or global)."""

    def __init__(self, conn: Connection, tenant_id: UUID | None) -> None:
        self._conn = conn
        self.tenant_id = tenant_id
        self.committed = False

    def __enter__(self) -> ConnectionUnitOfWork:
        self._conn.execute(
            "SELECT set_config('app.current_tenant_id', %s, true)", (str(self.tenant_id or ""),)
        )
        self.knowledge = KnowledgeRepository(self._conn, self.tenant_id)
        self.committed = False
        return self

    def commit(self) -> None:
        self._conn.commit()
        self.committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self._conn.rollback()


@dataclass
class Report:
    ingested: int = 0
    chunks: int = 0
    already_ready: int = 0
    duplicates: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    would_ingest: list[Path] = field(default_factory=list)
    seconds: float = 0.0


class BatchedStore:
    """Chunks of registered documents of one scope, stored ``batch_chunks`` at a time: each
    batch travels by COPY (FORMAT BINARY) in one transaction that marks its documents ready.

    With ``writers`` (pipelines on connections of their own) the batches are stored in the
    background, one per writer at a time, while the caller registers and prepares the next
    documents: the server stores on as many backends as there are writers. A batch's failure
    is raised by a later ``add`` or by ``flush``; the batches already running finish (each is
    still all or nothing), and a document of a failed batch stays ``processing`` for the next
    run to restart, as in a crash. Use it as a context manager: on the way out it waits for
    the batches under way."""

    def __init__(
        self,
        pipeline: IngestionPipeline,
        tenant_id: UUID | None,
        *,
        batch_chunks: int,
        report: Report,
        writers: Sequence[IngestionPipeline] = (),
    ) -> None:
        self._pipeline = pipeline
        self._tenant_id = tenant_id
        self._batch_chunks = batch_chunks
        self._report = report
        self._pending: list[tuple[UUID, Sequence[EmbeddedChunk]]] = []
        self.waiting = 0
        self._idle: queue.SimpleQueue[IngestionPipeline] = queue.SimpleQueue()
        for writer in writers:
            self._idle.put(writer)
        self._writers = len(writers)
        self._pool = ThreadPoolExecutor(self._writers) if writers else None
        self._running: deque[tuple[Future[int], int]] = deque()

    def __enter__(self) -> BatchedStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def switch_scope(self, tenant_id: UUID | None) -> None:
        """The next documents belong to ``tenant_id`` (None: global): the pending batch is sent
        for its own scope without waiting for it (a load of several scopes keeps its writers
        busy across the switch)."""
        self._send()
        self._tenant_id = tenant_id

    def add(self, document_id: UUID, chunks: Sequence[EmbeddedChunk]) -> None:
        self._pending.append((document_id, chunks))
        self.waiting += len(chunks)
        if self.waiting >= self._batch_chunks:
            self._send()

    def flush(self) -> None:
        self._send()
        while self._running:
            self._collect()

    def _send(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self.waiting = self._pending, [], 0
        if self._pool is None:
            self._count(self._pipeline.store(self._tenant_id, batch), len(batch))
            return
        while len(self._running) >= self._writers:
            self._collect()
        future = self._pool.submit(self._store, self._tenant_id, batch)
        self._running.append((future, len(batch)))

    def _store(
        self, tenant_id: UUID | None, batch: list[tuple[UUID, Sequence[EmbeddedChunk]]]
    ) -> int:
        writer = self._idle.get()
        try:
            return writer.store(tenant_id, batch)
        finally:
            self._idle.put(writer)

    def _collect(self) -> None:
        future, documents = self._running.popleft()
        self._count(future.result(), documents)  # a failed batch raises here

    def _count(self, chunks: int, documents: int) -> None:
        self._report.chunks += chunks
        self._report.ingested += documents


def collect(paths: Sequence[Path]) -> list[Path]:
    """The supported files under ``paths``, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.suffix.lower() in CONTENT_TYPES)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(path)
    return found


def resolve_tenant(conn: Connection, tenant: str | None) -> UUID | None:
    if tenant is None:
        return None
    row = conn.execute(
        "SELECT id FROM alquimista_platform.tenants WHERE slug = %s OR id::text = %s",
        (tenant, tenant),
    ).fetchone()
    conn.rollback()
    if row is None:
        raise LookupError(f"no tenant {tenant!r}")
    tenant_id: UUID = row["id"]
    return tenant_id


def _title(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name


def ingest(
    conn: Connection,
    files: Sequence[Path],
    *,
    tenant_id: UUID | None,
    embedder: Embedder,
    dry_run: bool = False,
    batch_chunks: int = 2000,
    progress: bool = True,
    rebuild_index: bool = False,
    writers: Sequence[Connection] = (),
) -> Report:
    """Ingest ``files`` into one scope (see ``vector_index_for_load`` for ``rebuild_index``).
    With ``writers`` (connections other than ``conn``) the batches are stored on them in the
    background while ``conn`` registers the next documents (see ``BatchedStore``)."""
    load = partial(
        _ingest,
        conn,
        files,
        tenant_id=tenant_id,
        embedder=embedder,
        dry_run=dry_run,
        batch_chunks=batch_chunks,
        progress=progress,
        writers=writers,
    )
    if dry_run:
        return load()
    with vector_index_for_load(conn, tenant_id, rebuild=rebuild_index):
        return load()


@contextmanager
def vector_index_for_load(
    conn: Connection, tenant_id: UUID | None, *, rebuild: bool
) -> Iterator[None]:
    """The indexes a load rebuilds (the vector index and the chunks' full-text index) around a
    load: built first if a crashed load left them dropped; with ``rebuild``, dropped for the
    load and built once at the end, also when the load fails."""
    with ConnectionUnitOfWork(conn, tenant_id) as uow:
        uow.knowledge.ensure_load_indexes()
        if rebuild:
            uow.knowledge.drop_load_indexes()
        uow.commit()
    try:
        yield
    finally:
        if rebuild:
            conn.rollback()
            with ConnectionUnitOfWork(conn, tenant_id) as uow:
                uow.knowledge.ensure_load_indexes()
                uow.commit()


def _ingest(
    conn: Connection,
    files: Sequence[Path],
    *,
    tenant_id: UUID | None,
    embedder: Embedder,
    dry_run: bool,
    batch_chunks: int,
    progress: bool,
    writers: Sequence[Connection],
) -> Report:
    report = Report()
    started = time.perf_counter()
    pipeline = IngestionPipeline(lambda t: ConnectionUnitOfWork(conn, t), embedder)
    hashes = {path: sha256_hex(path.read_bytes()) for path in files}
    with ConnectionUnitOfWork(conn, tenant_id) as uow:
        ready = uow.knowledge.ready_hashes(list(hashes.values()))
    seen: set[str] = set()
    writer_pipelines = [] if dry_run else [writer_pipeline(writer, embedder) for writer in writers]
    with BatchedStore(
        pipeline, tenant_id, batch_chunks=batch_chunks, report=report, writers=writer_pipelines
    ) as batches:
        bar = tqdm(files, unit="doc", disable=not progress, desc="ingesting")
        for path in bar:
            sha = hashes[path]
            if sha in ready:
                report.already_ready += 1
                continue
            if sha in seen:
                report.duplicates.append((path, "same_file"))  # the same contents twice in one run
                continue
            seen.add(sha)
            try:
                draft = _draft(path, sha, tenant_id)
                if dry_run:
                    with ConnectionUnitOfWork(conn, tenant_id) as uow:
                        found = uow.knowledge.find_duplicate(
                            title=draft.title, source=draft.source, file_sha256=sha
                        )
                    if found and (found[0] == "similar_title" or found[2] == "ready"):
                        report.duplicates.append((path, found[0]))
                    else:
                        report.would_ingest.append(path)
                    continue
                document_id = pipeline.register(draft)
                chunks = pipeline.prepare(path.read_bytes(), draft.content_type)
            except DuplicateDocument as duplicate:
                report.duplicates.append((path, duplicate.reason))
                continue
            except AppError as error:
                report.failed.append((path, error.message))
                continue
            batches.add(document_id, chunks)
            bar.set_postfix(chunks=report.chunks + batches.waiting)
        batches.flush()
    report.seconds = time.perf_counter() - started
    return report


def writer_pipeline(conn: Connection, embedder: Embedder) -> IngestionPipeline:
    """A pipeline storing on ``conn``: one of ``BatchedStore``'s background writers."""
    return IngestionPipeline(lambda tenant_id: ConnectionUnitOfWork(conn, tenant_id), embedder)


def _draft(path: Path, sha: str, tenant_id: UUID | None) -> DocumentDraft:
    return DocumentDraft(
        tenant_id=tenant_id,
        title=_title(path),
        source=f"file://{path.resolve()}",
        file_sha256=sha,
        content_type=content_type_for(path.name),
        metadata={"filename": path.name, "bytes": path.stat().st_size},
    )


def _connect(url: str) -> Connection:
    conn = psycopg.connect(url, row_factory=dict_row)
    register_vector(conn)
    return conn


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="\n\n".join((__doc__ or "").split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tenant", help="the tenant's slug or id")
    scope.add_argument("--global", dest="global_", action="store_true", help="global documents")
    parser.add_argument("--dry-run", action="store_true", help="show what would happen")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL"
    )
    parser.add_argument("--batch-chunks", type=int, default=2000, help="chunks per transaction")
    parser.add_argument(
        "--writers",
        type=int,
        default=2,
        help="connections storing batches in the background while the next documents are "
        "registered (0: store each batch in turn on the one connection)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--rebuild-index",
        action="store_true",
        help="drop the vector index and the chunks' full-text index for the load and build "
        "both once at the end: much faster for a load as large as the table (searches scan "
        "exactly meanwhile; a failed or crashed load rebuilds them)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, embedder: Embedder | None = None) -> int:
    args = parse_args(argv)
    if not args.database_url:
        print("set DATABASE_URL or pass --database-url", file=sys.stderr)
        return 1
    if args.writers < 0:
        print("--writers must be 0 or more", file=sys.stderr)
        return 1
    files = collect(args.paths)
    with ExitStack() as stack:
        conn = stack.enter_context(_connect(args.database_url))
        writers = [
            stack.enter_context(_connect(args.database_url))
            for _ in range(0 if args.dry_run else args.writers)
        ]
        tenant_id = resolve_tenant(conn, args.tenant)
        report = ingest(
            conn,
            files,
            tenant_id=tenant_id,
            embedder=embedder or LlmGateway.from_settings(LlmSettings()),
            dry_run=args.dry_run,
            batch_chunks=args.batch_chunks,
            progress=not args.no_progress,
            rebuild_index=args.rebuild_index,
            writers=writers,
        )
    for path, reason in report.duplicates:
        print(f"duplicate ({reason}): {path}")
    for path, reason in report.failed:
        print(f"failed ({reason}): {path}")
    if args.dry_run:
        for path in report.would_ingest:
            print(f"would ingest: {path}")
        print(
            f"dry run: {len(report.would_ingest)} to ingest, {report.already_ready} already "
            f"ready, {len(report.duplicates)} duplicates"
        )
        return 0
    rate = report.chunks / report.seconds if report.seconds else 0.0
    print(
        f"ingested {report.ingested} documents ({report.chunks} chunks, {rate:.0f} chunks/s); "
        f"{report.already_ready} already ready, {len(report.duplicates)} duplicates, "
        f"{len(report.failed)} failed"
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
