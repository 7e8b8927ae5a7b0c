"""The knowledge base against ChromaDB, side by side in one run, on the same data: 20,000
chunks x 1536-d clustered synthetic vectors from a fixed seed (200 documents of 100 chunks,
spread over 10 tenants) and the same 200 queries.

Measured, alternating between the two sides so load on a shared machine falls on both alike:

- bulk ingestion end to end, rows/s: ours is the operator's path (scripts/ingest_documents.py:
  each document registered with its duplicate checks, then COPY ... (FORMAT BINARY) batches
  into the migrated tables, one transaction per batch, on two background writers, the vector
  and full-text indexes built at the end with --rebuild-index); Chroma's is
  ``collection.add`` in batches of its maximum size on a PersistentClient;
- a 100-chunk document into the indexed 20k table (ours: the ingestion Lambda's path as the
  runtime role: register, then one transaction);
- top-10 search p50 and recall@10 against exact cosine search over all 20k rows (ours: 20k
  global documents, searched through ``knowledge.search_chunks_v3`` in a tenant's unit of work
  as the runtime role, the search sent with BEGIN), and with a tenant filter matching 10 % of
  the rows (10 results every time, recall >= 0.95). With 20k global rows the search reads the
  HNSW index; a tenant's 2,000 rows are under ``EXACT_SEARCH_MAX_ROWS`` and scanned exactly.
  Both sides return what a RAG prompt needs: ours each chunk's text, title, document and
  scores; Chroma's ``query`` its default ``include`` (documents, metadatas, distances). Chroma
  returning ids and distances only is measured too, not as the target.

Ours runs the whole hybrid search; the queries' text shares no word with the corpus, so the
full-text branch runs and matches nothing and the fused ranking is the vector ranking.
Embeddings are precomputed on both sides: neither is timed embedding text.

Also measured (``--only chat``): the chat function's cold import CPU (a fresh interpreter set up
like the function: the code, the base and chat layers, the runtime's boto3) and a chat message
end to end in-process through ``lambda_handler`` with the offline provider, less the time
spent in the provider's calls.

  uv run --frozen --group bench python scripts/bench/knowledge.py --write docs/benchmarks.md
  uv run --frozen --group bench python scripts/bench/knowledge.py --chunks 2000 --queries 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from lambdas.chat.constants import EMBEDDING_DIMENSION  # noqa: E402
from lambdas.chat.ingestion import IngestionPipeline, KnowledgeUnitOfWork  # noqa: E402
from lambdas.chat.knowledge_repository import SearchQuery, index_pending, retrieved  # noqa: E402
from lambdas.chat.models import ChunkDraft, DocumentDraft, EmbeddedChunk  # noqa: E402
from lambdas.chat.text import estimate_tokens  # noqa: E402
from lambdas.chat.unit_of_work import ChatUnitOfWork  # noqa: E402
from lambdas.migrations.roles import RuntimeRole  # noqa: E402
from lambdas.shared.constants import resource_names  # noqa: E402
from lambdas.shared.db import Database, UnitOfWork  # noqa: E402
from lambdas.shared.runtime import WRITERS  # noqa: E402
from lambdas.shared.scope import RequestScope  # noqa: E402
from lambdas.shared.secrets import DbCredentials  # noqa: E402
from scripts.bench.chat import measure_chat, write_chat_section  # noqa: E402
from scripts.bench.support import (  # noqa: E402
    KEPT_BELOW,
    benchmark_server,
    machine_description,
    scratch_database,
    write_section,
)
from scripts.devstack.postgres import ConnectionInfo  # noqa: E402
from scripts.ingest_documents import (  # noqa: E402
    BatchedStore,
    ConnectionUnitOfWork,
    Report,
    vector_index_for_load,
    writer_pipeline,
)

SECTION_TITLE = "## Knowledge base against ChromaDB"
MODEL = "bench-synthetic-1536"
K = 10
CHUNKS_PER_DOCUMENT = 100
RECALL_TARGET = 0.95
INGESTION_RATIO_TARGET = 2.0
BULK_WRITERS = 2  # scripts/ingest_documents.py --writers (its default)
QUERY_TEXT = "xyzzy qwfpg"  # no word of the corpus: the full-text branch matches nothing
RUNTIME_PASSWORD = uuid.uuid4().hex
# numpy arrays (float32 rows; a boolean mask): numpy comes with the bench group, so it is
# imported where used and --help works without it
Vectors = Any
Mask = Any


@dataclass(frozen=True)
class Corpus:
    vectors: Vectors  # (n, d), float32
    texts: list[str]
    titles: list[str]  # one per document, then one per added document
    tenant_of_document: list[int]
    queries: Vectors
    extra: Vectors  # vectors of the single documents added to the indexed table

    @property
    def documents(self) -> int:
        return len(self.tenant_of_document)

    def document_rows(self, document: int) -> range:
        return range(document * CHUNKS_PER_DOCUMENT, (document + 1) * CHUNKS_PER_DOCUMENT)

    def tenant_rows(self, tenant: int) -> Mask:
        import numpy as np  # noqa: PLC0415

        owner = np.repeat(np.asarray(self.tenant_of_document), CHUNKS_PER_DOCUMENT)
        return owner == tenant


def make_corpus(
    *, chunks: int, queries: int, clusters: int, tenants: int, seed: int, extra_documents: int
) -> Corpus:
    """Clustered vectors: unit cluster centres plus Gaussian noise as long as the centre (two
    chunks of one cluster have a cosine of about 0.5), queries drawn the same way."""
    if chunks % CHUNKS_PER_DOCUMENT:
        raise SystemExit(f"--chunks must be a multiple of {CHUNKS_PER_DOCUMENT}")
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    dim = EMBEDDING_DIMENSION
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(count: int) -> Vectors:
        picked = centres[rng.integers(0, clusters, count)]
        noise = rng.standard_normal((count, dim)).astype(np.float32) / np.sqrt(dim)
        drawn: Vectors = (picked + noise).astype(np.float32)
        return drawn

    vectors = draw(chunks)
    syllables = ["ca", "de", "fi", "go", "lu", "ma", "ne", "po", "ra", "se", "ti", "vo"]
    vocabulary = ["".join(rng.choice(syllables, size=int(rng.integers(2, 5)))) for _ in range(3000)]
    words = rng.choice(vocabulary, size=(chunks, 90))
    texts = [f"Trecho {i}: " + " ".join(row) + "." for i, row in enumerate(words)]
    documents = chunks // CHUNKS_PER_DOCUMENT
    titles = [
        f"{' '.join(rng.choice(vocabulary, size=3))} {uuid.UUID(int=int(rng.integers(2**62)))}"
        for _ in range(documents + extra_documents)
    ]
    return Corpus(
        vectors=vectors,
        texts=texts,
        titles=titles,
        tenant_of_document=[d % tenants for d in range(documents)],
        queries=draw(queries),
        extra=draw(extra_documents * CHUNKS_PER_DOCUMENT),
    )


def exact_top(corpus: Corpus, mask: Mask | None) -> list[set[int]]:
    """The exact top-k rows of every query by cosine distance (float32, brute force)."""
    import numpy as np  # noqa: PLC0415

    rows = corpus.vectors / np.linalg.norm(corpus.vectors, axis=1, keepdims=True)
    queries = corpus.queries / np.linalg.norm(corpus.queries, axis=1, keepdims=True)
    scores = queries @ rows.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    best = np.argsort(-scores, axis=1)[:, :K]
    return [set(map(int, row)) for row in best]


def recall(found: list[list[int]], truth: list[set[int]]) -> float:
    return statistics.fmean(len(set(f) & t) / K for f, t in zip(found, truth, strict=True))


class PrecomputedEmbedder:
    """The pipeline's embedder port; the benchmark hands it chunks already embedded."""

    embedding_model = MODEL

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise AssertionError("the benchmark never embeds text")


def _chunks(corpus: Corpus, rows: range, vectors: Vectors | None = None) -> list[EmbeddedChunk]:
    source = corpus.vectors if vectors is None else vectors
    return [
        EmbeddedChunk(
            chunk=ChunkDraft(
                index=i,
                content=corpus.texts[row % len(corpus.texts)],
                token_count=estimate_tokens(corpus.texts[row % len(corpus.texts)]),
            ),
            embedding=source[row],
        )
        for i, row in enumerate(rows)
    ]


def _draft(corpus: Corpus, document: int, tenant_id: uuid.UUID | None) -> DocumentDraft:
    return DocumentDraft(
        tenant_id=tenant_id,
        title=corpus.titles[document],
        source=f"bench://documents/{document}",
        file_sha256=f"{document:064x}",
    )


@dataclass
class OurDatabase:
    """A migrated database: the owner's (operator's) URL, the runtime role's Database, the
    tenants and the document ids in corpus order."""

    owner_url: str
    runtime: Database
    tenants: list[uuid.UUID]
    documents: dict[uuid.UUID, int] = field(default_factory=dict)

    def close(self) -> None:
        self.runtime.close()


@contextmanager
def our_database(server: ConnectionInfo, tenants: int) -> Iterator[OurDatabase]:
    role = resource_names("dev").runtime_db_role
    with scratch_database(server, runtime_role=RuntimeRole(role, RUNTIME_PASSWORD)) as name:
        owner_url = server.url(name)
        creds = DbCredentials(
            host=server.host,
            port=server.port,
            dbname=name,
            username=role,
            password=RUNTIME_PASSWORD,
        )
        with psycopg.connect(owner_url, autocommit=True) as conn:
            tenant_ids = [
                conn.execute(
                    "INSERT INTO alquimista_platform.tenants (slug, name) VALUES (%s, %s) "
                    "RETURNING id",
                    (f"bench-{i}-{uuid.uuid4().hex[:8]}", f"Bench {i}"),
                ).fetchone()[0]  # type: ignore[index]
                for i in range(tenants)
            ]
        database = Database(lambda force: creds, connect_timeout_s=5, application_name="bench")
        ours = OurDatabase(owner_url, database, tenant_ids)
        try:
            yield ours
        finally:
            ours.close()


def ours_bulk_ingest(
    db: OurDatabase, corpus: Corpus, *, per_tenant: bool, rebuild_index: bool
) -> float:
    """scripts/ingest_documents.py's path from embedded chunks on: every document registered,
    chunks stored by COPY in batches of 2,000 on the script's default two background writers
    (connections of their own), and with ``rebuild_index`` the vector and full-text indexes
    dropped for the load and built at its end (``--rebuild-index``). Global documents, or
    each tenant's own."""
    started = time.perf_counter()
    with ExitStack() as stack:
        conn = stack.enter_context(_owner_connection(db))
        writers = [
            writer_pipeline(stack.enter_context(_owner_connection(db)), PrecomputedEmbedder())
            for _ in range(BULK_WRITERS)
        ]
        pipeline = IngestionPipeline(lambda t: ConnectionUnitOfWork(conn, t), PrecomputedEmbedder())
        scopes: list[uuid.UUID | None] = list(db.tenants) if per_tenant else [None]
        with (
            vector_index_for_load(conn, None, rebuild=rebuild_index),
            BatchedStore(
                pipeline, None, batch_chunks=2000, report=Report(), writers=writers
            ) as batches,
        ):
            for position, tenant_id in enumerate(scopes):
                batches.switch_scope(tenant_id)
                for document in range(corpus.documents):
                    if per_tenant and corpus.tenant_of_document[document] != position:
                        continue
                    document_id = pipeline.register(_draft(corpus, document, tenant_id))
                    db.documents[document_id] = document
                    batches.add(document_id, _chunks(corpus, corpus.document_rows(document)))
            batches.flush()
    return time.perf_counter() - started


def _owner_connection(db: OurDatabase) -> psycopg.Connection[dict[str, Any]]:
    conn = psycopg.connect(db.owner_url, row_factory=dict_row)
    register_vector(conn)
    return conn


def _runtime_uow(db: OurDatabase) -> Callable[[uuid.UUID | None], KnowledgeUnitOfWork]:
    scope = RequestScope(lambda: db.runtime, writers=WRITERS)
    return lambda tenant: KnowledgeUnitOfWork(scope, tenant)


def ours_add_document(db: OurDatabase, corpus: Corpus, extra: int) -> float:
    """The ingestion Lambda's path as the runtime role: register, then one transaction that
    stores the vectors unindexed (searchable at once, exactly) for the indexing job."""
    tenant_id = db.tenants[1 % len(db.tenants)]
    pipeline = IngestionPipeline(_runtime_uow(db), PrecomputedEmbedder(), defer_indexing=True)
    rows = range(extra * CHUNKS_PER_DOCUMENT, (extra + 1) * CHUNKS_PER_DOCUMENT)
    chunks = _chunks(corpus, rows, corpus.extra)
    started = time.perf_counter()
    document_id = pipeline.register(_draft(corpus, corpus.documents + extra, tenant_id))
    pipeline.store(tenant_id, [(document_id, chunks)])
    return time.perf_counter() - started


def ours_index_pending(db: OurDatabase) -> tuple[float, int]:
    """The ``index_chat_embeddings`` job's work as the runtime role: every vector the added
    documents left unindexed inserted into the HNSW graph. Seconds and how many."""
    scope = RequestScope(lambda: db.runtime, writers=WRITERS)
    started = time.perf_counter()
    with UnitOfWork(scope, None) as uow:
        indexed = index_pending(uow.conn, limit=1_000_000)
        uow.commit()
    return time.perf_counter() - started, indexed


def ours_search(db: OurDatabase, tenant_id: uuid.UUID, query: Vectors) -> tuple[float, list[int]]:
    """The hybrid search as the chat runs it, in the tenant's own unit of work: the search sent
    with BEGIN and the tenant scoping in one round trip, then COMMIT."""
    scope = RequestScope(lambda: db.runtime, writers=WRITERS)
    embedding: list[float] = query.tolist()  # what the gateway hands the retriever
    started = time.perf_counter()
    searching = ChatUnitOfWork(scope, tenant_id, default_monthly_tokens=1).searching(
        text=QUERY_TEXT, embedding=embedding, model=MODEL, k=K
    )
    with searching as work:
        found = work.found
        work.commit()
    elapsed = time.perf_counter() - started
    return elapsed, [db.documents[c.document_id] * CHUNKS_PER_DOCUMENT + c.index for c in found]


def ours_search_statement(
    db: OurDatabase, tenant_id: uuid.UUID, query: Vectors
) -> tuple[float, list[int]]:
    """The search statement alone, in a unit of work already open: what the chat's retrieval
    adds to the transaction it shares with the token reservation (BEGIN and COMMIT untimed)."""
    uow = _runtime_uow(db)
    embedding: list[float] = query.tolist()
    with uow(tenant_id) as work:
        started = time.perf_counter()
        search = SearchQuery(text=QUERY_TEXT, embedding=embedding, model=MODEL, k=K)
        found = retrieved(work.conn.execute(*search.statement()))
        elapsed = time.perf_counter() - started
        work.commit()
    return elapsed, [db.documents[c.document_id] * CHUNKS_PER_DOCUMENT + c.index for c in found]


class Chroma:
    """ChromaDB on disk (PersistentClient), cosine space, embeddings given."""

    def __init__(self, path: Path) -> None:
        import chromadb  # noqa: PLC0415
        from chromadb.config import Settings  # noqa: PLC0415

        self.client = chromadb.PersistentClient(
            path=str(path), settings=Settings(anonymized_telemetry=False)
        )
        self.batch = int(self.client.get_max_batch_size())

    def collection(self, name: str) -> Any:
        return self.client.create_collection(
            name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
        )

    def bulk_ingest(self, collection: Any, corpus: Corpus) -> float:
        import numpy as np  # noqa: PLC0415

        owner = np.repeat(np.asarray(corpus.tenant_of_document), CHUNKS_PER_DOCUMENT)
        started = time.perf_counter()
        for start in range(0, len(corpus.texts), self.batch):
            rows = range(start, min(start + self.batch, len(corpus.texts)))
            collection.add(
                ids=[str(i) for i in rows],
                embeddings=corpus.vectors[rows.start : rows.stop],
                documents=[corpus.texts[i] for i in rows],
                metadatas=[
                    {"tenant": int(owner[i]), "document": i // CHUNKS_PER_DOCUMENT} for i in rows
                ],
            )
        return time.perf_counter() - started

    def add_document(self, collection: Any, corpus: Corpus, extra: int) -> float:
        rows = range(extra * CHUNKS_PER_DOCUMENT, (extra + 1) * CHUNKS_PER_DOCUMENT)
        started = time.perf_counter()
        collection.add(
            ids=[f"extra-{i}" for i in rows],
            embeddings=corpus.extra[rows.start : rows.stop],
            documents=[corpus.texts[i] for i in rows],
            metadatas=[{"tenant": 1, "document": corpus.documents + extra} for _ in rows],
        )
        return time.perf_counter() - started

    def search(
        self, collection: Any, query: Vectors, tenant: int | None, *, texts: bool = True
    ) -> tuple[float, list[int]]:
        """``collection.query`` for the top 10. With ``texts`` (the target's side) it returns
        what our search returns and a RAG prompt needs, each chunk's text and metadata:
        Chroma's default ``include`` (documents, metadatas, distances). Without, ids and
        distances only (the side this benchmark measured until 2026-12-02 12:00 UTC)."""
        started = time.perf_counter()
        result = collection.query(
            query_embeddings=[query],
            n_results=K,
            where={"tenant": tenant} if tenant is not None else None,
            include=["documents", "metadatas", "distances"] if texts else ["distances"],
        )
        elapsed = time.perf_counter() - started
        return elapsed, [int(i) for i in result["ids"][0]]


@dataclass
class KnowledgeResults:
    rows: int
    ingest_s: dict[str, list[float]] = field(default_factory=dict)
    document_ms: dict[str, list[float]] = field(default_factory=dict)
    search_ms: dict[str, list[float]] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    short_results: dict[str, int] = field(default_factory=dict)
    # the indexing job after the added documents: seconds, vectors
    indexing: tuple[float, int] = (0.0, 0)
    load: list[str] = field(default_factory=list)

    def rate(self, side: str) -> float:
        return self.rows / statistics.median(self.ingest_s[side])


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def _searches(
    results: KnowledgeResults,
    corpus: Corpus,
    label: str,
    *,
    sides: dict[str, Callable[[Vectors], tuple[float, list[int]]]],
    truth: list[set[int]],
    warmup: int,
) -> None:
    """Every query on every side, the sides' order rotating from one query to the next."""
    for query in corpus.queries[:warmup]:
        for search in sides.values():
            search(query)
    found: dict[str, list[list[int]]] = {side: [] for side in sides}
    order = list(sides.items())
    for i, query in enumerate(corpus.queries):
        shift = i % len(order)
        for side, search in order[shift:] + order[:shift]:
            elapsed, rows = search(query)
            results.search_ms.setdefault(f"{side} {label}", []).append(elapsed * 1000)
            found[side].append(rows)
    for side, answers in found.items():
        results.recall[f"{side} {label}"] = recall(answers, truth)
        results.short_results[f"{side} {label}"] = sum(len(a) < K for a in answers)


def measure_knowledge(
    server: ConnectionInfo, corpus: Corpus, *, documents: int, rebuild_index: bool
) -> KnowledgeResults:
    results = KnowledgeResults(rows=len(corpus.texts))
    tenants = max(corpus.tenant_of_document) + 1
    with (
        our_database(server, 1) as global_db,
        our_database(server, tenants) as tenant_db,
        tempfile.TemporaryDirectory(prefix="bench-chroma-") as chroma_dir,
    ):
        chroma = Chroma(Path(chroma_dir))
        everything, by_tenant = chroma.collection("everything"), chroma.collection("tenants")
        results.load.append(_load())
        print("bulk ingestion: ours (global documents)", flush=True)
        results.ingest_s.setdefault("ours", []).append(
            ours_bulk_ingest(global_db, corpus, per_tenant=False, rebuild_index=rebuild_index)
        )
        print("bulk ingestion: chroma", flush=True)
        results.ingest_s.setdefault("chroma", []).append(chroma.bulk_ingest(everything, corpus))
        print("bulk ingestion: chroma (second collection)", flush=True)
        results.ingest_s["chroma"].append(chroma.bulk_ingest(by_tenant, corpus))
        print("bulk ingestion: ours (each tenant's documents)", flush=True)
        results.ingest_s["ours"].append(
            ours_bulk_ingest(tenant_db, corpus, per_tenant=True, rebuild_index=rebuild_index)
        )
        results.load.append(_load())
        with psycopg.connect(global_db.owner_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE knowledge.embeddings, knowledge.chunks")
        with psycopg.connect(tenant_db.owner_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE knowledge.embeddings, knowledge.chunks")

        print("top-10 search, every row", flush=True)
        searcher = global_db.tenants[0]  # holds no document: it sees the 20k global ones
        _searches(
            results,
            corpus,
            "all rows",
            sides={
                "ours": lambda q: ours_search(global_db, searcher, q),
                "chroma": lambda q: chroma.search(everything, q, None),
                "chroma ids": lambda q: chroma.search(everything, q, None, texts=False),
                "statement": lambda q: ours_search_statement(global_db, searcher, q),
            },
            truth=exact_top(corpus, None),
            warmup=20,
        )
        print("top-10 search, one tenant (10 % of the rows)", flush=True)
        _searches(
            results,
            corpus,
            "tenant filter",
            sides={
                "ours": lambda q: ours_search(tenant_db, tenant_db.tenants[0], q),
                "chroma": lambda q: chroma.search(by_tenant, q, 0),
                "chroma ids": lambda q: chroma.search(by_tenant, q, 0, texts=False),
                "statement": lambda q: ours_search_statement(tenant_db, tenant_db.tenants[0], q),
            },
            truth=exact_top(corpus, corpus.tenant_rows(0)),
            warmup=20,
        )
        results.load.append(_load())
        print("a 100-chunk document into the indexed table", flush=True)
        for extra in range(documents):
            if extra % 2 == 0:
                ours_s = ours_add_document(tenant_db, corpus, extra)
                chroma_s = chroma.add_document(by_tenant, corpus, extra)
            else:
                chroma_s = chroma.add_document(by_tenant, corpus, extra)
                ours_s = ours_add_document(tenant_db, corpus, extra)
            results.document_ms.setdefault("ours", []).append(ours_s * 1000)
            results.document_ms.setdefault("chroma", []).append(chroma_s * 1000)
        print("the indexing job over the added documents' vectors", flush=True)
        results.indexing = ours_index_pending(tenant_db)
        results.load.append(_load())
    return results


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render(knowledge: KnowledgeResults, args: argparse.Namespace) -> str:
    ours_rate, chroma_rate = knowledge.rate("ours"), knowledge.rate("chroma")
    doc_ours = statistics.median(knowledge.document_ms["ours"])
    doc_chroma = statistics.median(knowledge.document_ms["chroma"])
    mode = "--incremental (into the indexed table)" if args.incremental else "--rebuild-index"
    lines = [
        SECTION_TITLE,
        "",
        "`uv run --frozen --group bench python scripts/bench/knowledge.py --only knowledge "
        "--write docs/benchmarks.md` (the `bench` dependency group brings ChromaDB; it is never "
        "a runtime dependency). Embedded PostgreSQL 18 with pgvector 0.8, default durability "
        f"settings, loopback TCP; ChromaDB {_chroma_version()} PersistentClient in a temporary "
        f"folder. Machine: {args.machine}. Our bulk load: {mode}.",
        "",
        f"{knowledge.rows:,} chunks x {EMBEDDING_DIMENSION}-d, {args.clusters} clusters, "
        f"seed {args.seed}, {len(knowledge.search_ms['ours all rows'])} queries; load "
        f"average (1, 5, 15 min) at each phase: {' / '.join(knowledge.load)}.",
        "",
        "| measure | ours (pgvector) | ChromaDB | target | |",
        "|---|---|---|---|---|",
        f"| bulk ingestion, rows/s (median of {len(knowledge.ingest_s['ours'])} loads each) "
        f"| {ours_rate:,.0f} | {chroma_rate:,.0f} | >= {INGESTION_RATIO_TARGET:.0f}x "
        f"Chroma ({ours_rate / chroma_rate:.2f}x) "
        f"| {_met(ours_rate >= INGESTION_RATIO_TARGET * chroma_rate)} |",
        f"| a 100-chunk document into the indexed table, median ms "
        f"({len(knowledge.document_ms['ours'])} each) | {doc_ours:.1f} | {doc_chroma:.1f} "
        f"| <= Chroma | {_met(doc_ours <= doc_chroma)} |",
        f"| then the indexing job (index_chat_embeddings), ms per 100 chunks "
        f"({knowledge.indexing[1]} vectors) "
        f"| {knowledge.indexing[0] * 1000 * 100 / max(knowledge.indexing[1], 1):.1f} "
        f"| (inside its add) | (not the target: outside the document's transaction) | |",
    ]
    for label in ("all rows", "tenant filter"):
        ours_p50 = statistics.median(knowledge.search_ms[f"ours {label}"])
        chroma_p50 = statistics.median(knowledge.search_ms[f"chroma {label}"])
        statement_p50 = statistics.median(knowledge.search_ms[f"statement {label}"])
        ids_p50 = statistics.median(knowledge.search_ms[f"chroma ids {label}"])
        ours_recall = knowledge.recall[f"ours {label}"]
        chroma_recall = knowledge.recall[f"chroma {label}"]
        lines += [
            f"| top-10 search p50 ms, {label}: the chunks' text and metadata returned "
            f"(Chroma's default include) | {ours_p50:.2f} | {chroma_p50:.2f} "
            f"| <= Chroma | {_met(ours_p50 <= chroma_p50)} |",
            f"| the same, Chroma returning ids and distances only | {ours_p50:.2f} "
            f"| {ids_p50:.2f} | (not the target) "
            f"| {'faster' if ours_p50 <= ids_p50 else 'slower'} |",
            f"| the same, our search statement alone in an open transaction (the chat's "
            f"retrieval) | {statement_p50:.2f} | {chroma_p50:.2f} | (not the target) "
            f"| {'faster' if statement_p50 <= chroma_p50 else 'slower'} |",
            f"| recall@10 vs exact, {label} | {ours_recall:.3f} | {chroma_recall:.3f} "
            f"| >= {RECALL_TARGET} | {_met(ours_recall >= RECALL_TARGET)} |",
            f"| queries with fewer than 10 results, {label} "
            f"| {knowledge.short_results[f'ours {label}']} "
            f"| {knowledge.short_results[f'chroma {label}']} | 0 "
            f"| {_met(knowledge.short_results[f'ours {label}'] == 0)} |",
        ]
    return "\n".join([*lines, "", KEPT_BELOW]) + "\n"


def _chroma_version() -> str:
    try:
        import chromadb  # noqa: PLC0415
    except ImportError:
        return "(not installed)"
    return str(chromadb.__version__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=20_000, help="rows (multiple of 100)")
    parser.add_argument("--queries", type=int, default=200, help="search queries")
    parser.add_argument("--clusters", type=int, default=100, help="clusters of the vectors")
    parser.add_argument("--tenants", type=int, default=10, help="tenants sharing the rows")
    parser.add_argument("--seed", type=int, default=20261201, help="the data's random seed")
    parser.add_argument("--documents", type=int, default=6, help="100-chunk documents added")
    parser.add_argument("--messages", type=int, default=200, help="timed chat messages")
    parser.add_argument("--imports", type=int, default=7, help="cold-import interpreters")
    parser.add_argument(
        "--only", choices=("knowledge", "chat"), help="run one half of the benchmark"
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="bulk-load into the indexed table instead of with --rebuild-index",
    )
    parser.add_argument("--database-url", help="use this server (as superuser) instead")
    parser.add_argument("--write", type=Path, help="update this section of this file")
    parser.add_argument(
        "--machine", default=machine_description(), help="how to describe the machine"
    )
    args = parser.parse_args(argv)
    sections: list[tuple[str, Callable[[Path, str], None]]] = []
    if args.only != "chat":
        corpus = make_corpus(
            chunks=args.chunks,
            queries=args.queries,
            clusters=args.clusters,
            tenants=args.tenants,
            seed=args.seed,
            extra_documents=args.documents,
        )
        with benchmark_server(args.database_url) as server:
            knowledge = measure_knowledge(
                server, corpus, documents=args.documents, rebuild_index=not args.incremental
            )
        sections.append((render(knowledge, args), write_section))
    if args.only != "knowledge":
        chat = measure_chat(messages=args.messages, imports=args.imports)
        # the chat section's notes below its table are kept
        sections.append((chat.render(args.machine), write_chat_section))
    for section, write in sections:
        print(section)
        if args.write:
            write(args.write, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
