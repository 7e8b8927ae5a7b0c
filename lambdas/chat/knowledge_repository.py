"""The knowledge base in PostgreSQL: documents, chunks, embeddings and hybrid search.

A repository serves one scope: a tenant (its documents and the global ones) or, with
``tenant_id=None``, the global documents only (operators). Row-level security enforces the
same rule for the runtime role; the statements filter by scope as well so an operator's
connection, which RLS may not bind, sees exactly the same thing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString
from uuid import UUID

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from lambdas.chat.constants import (
    CANDIDATES_PER_RESULT,
    EXACT_SEARCH_MAX_ROWS,
    HNSW_EF_SEARCH,
    RRF_K,
    TITLE_SIMILARITY_THRESHOLD,
)
from lambdas.chat.errors import DuplicateDocument, DuplicateReason
from lambdas.chat.models import (
    Document,
    DocumentDraft,
    DocumentStatus,
    EmbeddedChunk,
    RetrievedChunk,
)
from lambdas.chat.rows import one
from lambdas.shared.db import Connection, Cursor, OpeningQuery

# The unique key that decides a race the pre-check could not see, and the reason it stands for.
_CONSTRAINT_REASONS: dict[str, DuplicateReason] = {
    "documents_source_key": "same_source",
    "documents_sha256_key": "same_file",
}

_DOCUMENT_COLUMNS = """
    d.id, d.tenant_id, d.title, d.source, d.file_sha256, d.status, d.error, d.chunk_count,
    d.created_at
"""

# Exactly one scope: a tenant's own rows, or the global rows (tenant_id NULL).
_SCOPE_TENANT: LiteralString = "d.tenant_id = %(tenant)s"
_SCOPE_GLOBAL: LiteralString = "d.tenant_id IS NULL"

# Three index-backed branches (the two unique keys and the title's trigram index), strongest
# reason first.
_DUPLICATE_SQL: LiteralString = """
    SELECT id, reason, status FROM (
        SELECT d.id, 'same_source' AS reason, 1 AS strength, 1.0::real AS similarity, d.status
        FROM knowledge.documents AS d
        WHERE {scope} AND d.source = %(source)s
        UNION ALL
        SELECT d.id, 'same_file', 2, 1.0::real, d.status
        FROM knowledge.documents AS d
        WHERE {scope} AND d.file_sha256 = %(sha)s
        UNION ALL
        SELECT d.id, 'similar_title', 3, similarity(d.title, %(title)s), d.status
        FROM knowledge.documents AS d
        WHERE {scope} AND d.title %% %(title)s
    ) AS found
    ORDER BY strength, similarity DESC
    LIMIT 1
"""

_STAGE_SQL = """
    CREATE TEMP TABLE IF NOT EXISTS knowledge_stage (
        chunk_id     uuid NOT NULL,
        tenant_id    uuid,
        document_id  uuid NOT NULL,
        chunk_index  integer NOT NULL,
        content      text NOT NULL,
        token_count  integer NOT NULL,
        metadata     jsonb NOT NULL,
        embedding    vector(1536) NOT NULL
    ) ON COMMIT DELETE ROWS
"""
_STAGE_TYPES = ["uuid", "uuid", "uuid", "int4", "text", "int4", "jsonb", "vector"]
_COPY_SQL = """
    COPY knowledge_stage
        (chunk_id, tenant_id, document_id, chunk_index, content, token_count, metadata, embedding)
    FROM STDIN (FORMAT BINARY)
"""

# The hybrid search runs in a SECURITY DEFINER function (migration 065) that applies the
# tenant-or-global rule itself: under row-level security the full-text condition, which is not
# LEAKPROOF, could not use its GIN index and read every visible chunk. It sets the HNSW
# settings it needs itself, so the search is one statement. The vector travels in binary (%b):
# no 1,536 floats to format here and parse there.
_SEARCH_SQL: LiteralString = """
    SELECT chunk_id, semantic_rank, lexical_rank, score, document_id, tenant_id, chunk_index,
           content, title
    FROM knowledge.search_chunks_v3(
        %(embedding)b, %(model)s, %(text)s, %(candidates)s, %(rrf_k)s, %(k)s, %(ef_search)s,
        %(exact_rows)s)
"""


@dataclass(frozen=True)
class SearchQuery:
    """A question for the hybrid search: its text, its embedding and the model that made it,
    and how many chunks to return (``ChatUnitOfWork.searching`` sends it with BEGIN).

    The search returns the ``k`` best chunks, fusing the vector ranking (cosine) with the
    full-text ranking (``portuguese``) by reciprocal rank. Only the transaction's tenant
    (``app.current_tenant_id``) and global chunks are searched; with no tenant set, nothing is.
    The vector ranking is exact when the scope holds at most ``exact_rows`` vectors of the model,
    else read from the HNSW index (halfvec) with an iterative scan, which keeps scanning past the
    rows the tenant filter drops, so a tenant holding a small share of the rows still gets its
    ``k`` results."""

    text: str
    embedding: Sequence[float]
    model: str
    k: int
    ef_search: int = HNSW_EF_SEARCH
    exact_rows: int = EXACT_SEARCH_MAX_ROWS

    def statement(self) -> OpeningQuery:
        """The search as one statement and its parameters (e.g. to send with BEGIN)."""
        return _SEARCH_SQL, {
            "embedding": _vector(self.embedding),
            "model": self.model,
            "text": self.text,
            "candidates": max(self.k * CANDIDATES_PER_RESULT, self.k),
            "rrf_k": RRF_K,
            "k": self.k,
            "ef_search": self.ef_search,
            "exact_rows": self.exact_rows,
        }


def retrieved(cursor: Cursor) -> list[RetrievedChunk]:
    """The chunks a search statement found, best first."""
    return [
        RetrievedChunk(
            chunk_id=row["chunk_id"],
            document_id=row["document_id"],
            document_title=row["title"],
            tenant_id=row["tenant_id"],
            index=row["chunk_index"],
            content=row["content"],
            score=row["score"],
            semantic_rank=row["semantic_rank"],
            lexical_rank=row["lexical_rank"],
        )
        for row in cursor.fetchall()
    ]


# The vector index as migrations 063 (partial: without the vectors stored unindexed) and 066 (a
# candidate list of 40 while building) define it. A bulk load (scripts/ingest_documents.py
# --rebuild-index) drops it and builds it again at the end: one build of the graph costs far less
# than inserting every row into it.
VECTOR_INDEX_SQL: LiteralString = """
    CREATE INDEX IF NOT EXISTS embeddings_hnsw_idx ON knowledge.embeddings
        USING hnsw ((embedding::halfvec(1536)) halfvec_cosine_ops)
        WITH (ef_construction = 40) WHERE indexed
"""
VECTOR_INDEX_BUILD_MEMORY = "1GB"
# The chunks' full-text index as migration 030 creates it. A bulk load drops it with the vector
# index: one GIN build at the end costs far less than its entries row by row (a 20k load: about
# 1 s to build against 2-3 s more to store).
SEARCH_INDEX_SQL: LiteralString = """
    CREATE INDEX IF NOT EXISTS chunks_search_idx ON knowledge.chunks USING gin (search_vector)
"""


def _document(row: dict[str, Any]) -> Document:
    return Document(
        id=row["id"],
        tenant_id=row["tenant_id"],
        title=row["title"],
        source=row["source"],
        file_sha256=row["file_sha256"],
        status=row["status"],
        error=row["error"],
        chunk_count=row["chunk_count"],
        created_at=row["created_at"],
    )


class KnowledgeRepository:
    """Documents, chunks and embeddings of one scope (a tenant, or global with None)."""

    def __init__(self, conn: Connection, tenant_id: UUID | None) -> None:
        self._conn = conn
        self._tenant_id = tenant_id
        self._scope = _SCOPE_TENANT if tenant_id is not None else _SCOPE_GLOBAL

    def find_duplicate(
        self, *, title: str, source: str, file_sha256: str
    ) -> tuple[DuplicateReason, UUID, DocumentStatus] | None:
        """The strongest reason an existing document in this scope duplicates the new one:
        the same source, the same file (SHA-256), or a title with trigram similarity >= 0.9
        (found through the title's trigram index with ``%``)."""
        self._conn.execute(
            "SELECT set_config('pg_trgm.similarity_threshold', %s, true)",
            (str(TITLE_SIMILARITY_THRESHOLD),),
        )
        row = self._conn.execute(
            _DUPLICATE_SQL.format(scope=self._scope),
            {"tenant": self._tenant_id, "source": source, "sha": file_sha256, "title": title},
        ).fetchone()
        return (row["reason"], row["id"], row["status"]) if row else None

    def create_document(
        self, draft: DocumentDraft, *, status: DocumentStatus = "processing"
    ) -> UUID:
        """Insert a document after the duplicate checks, or raise ``DuplicateDocument``.

        Documents of one scope are created one at a time (a transaction-scoped advisory lock),
        so two similar titles cannot both pass the check; the unique keys still decide a race
        on source or contents."""
        if draft.tenant_id != self._tenant_id:
            raise ValueError("the document belongs to another scope than this repository's")
        self._lock_scope()
        duplicate = self.find_duplicate(
            title=draft.title, source=draft.source, file_sha256=draft.file_sha256
        )
        if duplicate is not None:
            raise DuplicateDocument(duplicate[0], duplicate[1])
        try:
            with self._conn.transaction():
                row = self._conn.execute(
                    """
                    INSERT INTO knowledge.documents
                        (id, tenant_id, title, source, s3_key, file_sha256, content_type,
                         status, created_by, metadata)
                    VALUES (coalesce(%(id)s, gen_random_uuid()), %(tenant)s, %(title)s,
                            %(source)s, %(s3_key)s, %(sha)s, %(content_type)s, %(status)s,
                            %(created_by)s, %(metadata)s)
                    RETURNING id
                    """,
                    {
                        "id": draft.id,
                        "tenant": self._tenant_id,
                        "title": draft.title.strip(),
                        "source": draft.source,
                        "s3_key": draft.s3_key,
                        "sha": draft.file_sha256,
                        "content_type": draft.content_type,
                        "status": status,
                        "created_by": draft.created_by,
                        "metadata": Jsonb(draft.metadata),
                    },
                ).fetchone()
        except UniqueViolation as error:
            reason = _CONSTRAINT_REASONS.get(error.diag.constraint_name or "")
            if reason is None:
                raise
            existing = self.find_duplicate(
                title=draft.title, source=draft.source, file_sha256=draft.file_sha256
            )
            raise DuplicateDocument(reason, existing[1] if existing else uuid.UUID(int=0)) from None
        document_id: UUID = one(row)["id"]
        return document_id

    def restart_failed(self, document_id: UUID) -> bool:
        """Put a failed (or never finished) document back to processing, without its chunks."""
        row = self._conn.execute(
            """
            UPDATE knowledge.documents AS d
            SET status = 'processing', error = NULL, chunk_count = 0
            WHERE d.id = %(id)s AND d.status IN ('failed', 'pending', 'processing') AND {scope}
            RETURNING d.id
            """.replace("{scope}", self._scope),
            {"id": document_id, "tenant": self._tenant_id},
        ).fetchone()
        if row is None:
            return False
        self._conn.execute("DELETE FROM knowledge.chunks WHERE document_id = %s", (document_id,))
        return True

    def get(self, document_id: UUID) -> Document | None:
        """A document visible in this scope (a tenant also sees the global ones)."""
        row = self._conn.execute(
            f"""
            SELECT {_DOCUMENT_COLUMNS} FROM knowledge.documents AS d
            WHERE d.id = %(id)s AND (d.tenant_id IS NULL OR d.tenant_id = %(tenant)s)
            """,
            {"id": document_id, "tenant": self._tenant_id},
        ).fetchone()
        return _document(row) if row else None

    def list_documents(
        self, *, limit: int, before: UUID | None = None, include_global: bool = True
    ) -> list[Document]:
        """The scope's documents (a tenant's with the global ones unless told otherwise),
        newest first; keyset pagination on creation time and id."""
        rows = self._conn.execute(
            f"""
            SELECT {_DOCUMENT_COLUMNS} FROM knowledge.documents AS d
            WHERE (d.tenant_id = %(tenant)s
                   OR (d.tenant_id IS NULL AND (%(global)s OR %(tenant)s::uuid IS NULL)))
              AND (%(before)s::uuid IS NULL OR (d.created_at, d.id) < (
                    SELECT created_at, id FROM knowledge.documents WHERE id = %(before)s))
            ORDER BY d.created_at DESC, d.id DESC
            LIMIT %(limit)s
            """,
            {
                "tenant": self._tenant_id,
                "global": include_global,
                "before": before,
                "limit": limit,
            },
        ).fetchall()
        return [_document(row) for row in rows]

    def ready_hashes(self, hashes: Sequence[str]) -> set[str]:
        """Which of these file hashes are already stored and ready in this scope."""
        rows = self._conn.execute(
            f"""
            SELECT d.file_sha256 FROM knowledge.documents AS d
            WHERE {self._scope} AND d.status = 'ready' AND d.file_sha256 = ANY(%(hashes)s)
            """,
            {"tenant": self._tenant_id, "hashes": list(hashes)},
        ).fetchall()
        return {row["file_sha256"] for row in rows}

    def mark_failed(self, document_id: UUID, error: str) -> None:
        self._conn.execute(
            f"""
            UPDATE knowledge.documents AS d SET status = 'failed', error = %(error)s
            WHERE d.id = %(id)s AND {self._scope}
            """,
            {"id": document_id, "error": error[:2000], "tenant": self._tenant_id},
        )

    def store_chunks(
        self,
        documents: Sequence[tuple[UUID, Sequence[EmbeddedChunk]]],
        *,
        model: str,
        indexed: bool = True,
    ) -> int:
        """Store the chunks and embeddings of documents of this scope and mark them ready.

        Rows travel by ``COPY ... (FORMAT BINARY)`` into a temporary staging table (COPY into
        a table with row-level security is not allowed) and are then inserted with
        INSERT ... SELECT, so RLS checks every row. Returns the number of chunks stored.

        With ``indexed=False`` the vectors stay out of the HNSW graph (searched exactly) until
        the ``index_chat_embeddings`` job indexes them: the graph's ~4 ms a row is not paid in
        this transaction."""
        self._conn.execute(_STAGE_SQL)
        count = 0
        with self._conn.cursor() as cur, cur.copy(_COPY_SQL) as copy:
            copy.set_types(_STAGE_TYPES)
            for document_id, chunks in documents:
                for item in chunks:
                    copy.write_row(
                        (
                            uuid.uuid4(),
                            self._tenant_id,
                            document_id,
                            item.chunk.index,
                            item.chunk.content,
                            item.chunk.token_count,
                            Jsonb(item.chunk.metadata),
                            item.embedding,
                        )
                    )
                    count += 1
        self._conn.execute(
            """
            INSERT INTO knowledge.chunks
                (id, tenant_id, document_id, chunk_index, content, token_count, metadata)
            SELECT chunk_id, tenant_id, document_id, chunk_index, content, token_count, metadata
            FROM knowledge_stage
            """
        )
        self._conn.execute(
            """
            INSERT INTO knowledge.embeddings
                (tenant_id, chunk_id, embedding_model, embedding, indexed)
            SELECT tenant_id, chunk_id, %s, embedding, %s FROM knowledge_stage
            """,
            (model, indexed),
        )
        self._conn.execute(
            f"""
            UPDATE knowledge.documents AS d
            SET status = 'ready', error = NULL,
                chunk_count = (SELECT count(*) FROM knowledge.chunks AS c
                               WHERE c.document_id = d.id)
            WHERE d.id = ANY(%(ids)s) AND {self._scope}
            """,
            {"ids": [document_id for document_id, _ in documents], "tenant": self._tenant_id},
        )
        self._conn.execute("DELETE FROM knowledge_stage")
        return count

    def drop_vector_index(self) -> None:
        """Operators only (the schema owner): before a bulk load. Searches meanwhile scan
        exactly instead of through the index."""
        self._conn.execute("DROP INDEX IF EXISTS knowledge.embeddings_hnsw_idx")

    def ensure_vector_index(self) -> None:
        """Operators only: build the vector index if a bulk load (or a crash in one) left it
        dropped; nothing when it exists. Writers of embeddings wait for the build, readers
        do not."""
        self._conn.execute(
            "SELECT set_config('maintenance_work_mem', %s, true)", (VECTOR_INDEX_BUILD_MEMORY,)
        )
        self._conn.execute(VECTOR_INDEX_SQL)

    def drop_load_indexes(self) -> None:
        """Operators only: before a bulk load, the vector index and the chunks' full-text index.
        Searches meanwhile scan exactly, and the full-text branch reads every chunk."""
        self.drop_vector_index()
        self._conn.execute("DROP INDEX IF EXISTS knowledge.chunks_search_idx")

    def ensure_load_indexes(self) -> None:
        """Operators only: build whichever of the indexes a bulk load drops is missing (after
        the load, or a crash in one); nothing when both exist."""
        self.ensure_vector_index()
        self._conn.execute(SEARCH_INDEX_SQL)

    def _lock_scope(self) -> None:
        self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"knowledge.documents:{self._tenant_id or 'global'}",),
        )


def index_pending(conn: Connection, *, limit: int) -> int:
    """Every tenant's and the global vectors stored unindexed, up to ``limit`` of them, inserted
    into the HNSW index (``knowledge.index_pending_embeddings_v1``); returns how many."""
    row = conn.execute(
        "SELECT knowledge.index_pending_embeddings_v1(%s) AS indexed", (limit,)
    ).fetchone()
    return int(one(row)["indexed"])


def _vector(values: Sequence[float]) -> Any:
    from pgvector import Vector  # noqa: PLC0415

    return values if isinstance(values, Vector) else Vector(list(values))
