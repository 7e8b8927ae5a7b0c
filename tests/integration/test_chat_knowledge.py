"""The knowledge base on the real PostgreSQL: duplicates, hybrid search, tenant isolation,
global documents and all-or-nothing ingestion, with embeddings from the offline provider
reached by the real openai SDK."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pgvector.psycopg import register_vector

from lambdas.chat.errors import DuplicateDocument
from lambdas.chat.ingestion import IngestionPipeline, sha256_hex
from lambdas.chat.knowledge_repository import _DUPLICATE_SQL, KnowledgeRepository
from lambdas.chat.llm import LlmGateway
from lambdas.chat.models import ChunkDraft, DocumentDraft, EmbeddedChunk
from scripts.devstack.llm_server import RunningLlmServer, start_llm_server
from tests.support.chat import (
    OwnerUnitOfWork,
    near,
    portuguese_pdf,
    runtime_uow_factory,
    search_in,
    searched,
    unit_vector,
)
from tests.support.factories import TestTenant, create_tenant
from tests.support.schema_conventions import convention_violations

MODEL = "offline-embedding"

CONTRACTS = (
    "Rescisão de contrato de trabalho. O aviso prévio é de trinta dias e o empregador paga "
    "as verbas rescisórias em até dez dias.\n\n"
    "Férias: o empregado tem direito a trinta dias de férias após cada período aquisitivo."
)
TAXES = (
    "Imposto de renda da pessoa jurídica. O lucro presumido aplica percentuais sobre a "
    "receita bruta.\n\nO Simples Nacional unifica tributos federais, estaduais e municipais."
)
PRIVACY = (
    "A LGPD exige base legal para o tratamento de dados pessoais. O titular pode pedir a "
    "eliminação dos seus dados e a portabilidade."
)


@pytest.fixture(scope="module")
def llm() -> Iterator[RunningLlmServer]:
    server = start_llm_server(embedding_model=MODEL)
    yield server
    server.stop()


@pytest.fixture
def gateway(llm: RunningLlmServer) -> Iterator[LlmGateway]:
    gateway = LlmGateway(
        api_key=llm.api_key,
        base_url=llm.base_url,
        chat_model="offline-chat",
        embedding_model=MODEL,
        timeout_s=10,
        max_retries=0,
    )
    yield gateway
    gateway.close()


@pytest.fixture
def tenants(owner: psycopg.Connection[Any]) -> tuple[TestTenant, TestTenant]:
    return create_tenant(owner), create_tenant(owner)


def _draft(tenant: TestTenant | None, title: str, body: bytes, **extra: Any) -> DocumentDraft:
    return DocumentDraft(
        tenant_id=tenant.id if tenant else None,
        title=title,
        source=extra.pop("source", f"upload://{uuid.uuid4()}/{title}.txt"),
        file_sha256=sha256_hex(body),
        **extra,
    )


def _runtime_pipeline(db, gateway: LlmGateway) -> IngestionPipeline:
    return IngestionPipeline(runtime_uow_factory(db), gateway, max_tokens=40, overlap_tokens=8)


def _operator_pipeline(db, gateway: LlmGateway) -> IngestionPipeline:
    return IngestionPipeline(
        lambda tenant: OwnerUnitOfWork(db, tenant), gateway, max_tokens=40, overlap_tokens=8
    )


def _search(db, tenant: TestTenant, gateway: LlmGateway, question: str, k: int = 3):
    return searched(
        db, tenant.id, text=question, embedding=gateway.embed([question])[0], model=MODEL, k=k
    )


def test_duplicates_are_refused_with_their_reason(db, tenants, gateway) -> None:
    # Given a ready document of tenant A
    a, b = tenants
    pipeline = _runtime_pipeline(db, gateway)
    first = pipeline.ingest(
        _draft(a, "Manual de Rescisão Contratual 2024", CONTRACTS.encode(), source="s3://x/a"),
        CONTRACTS.encode(),
    )
    assert first.status == "ready"

    # Then the same source, the same contents or a near-identical title are refused
    cases = [
        (_draft(a, "Outro título", b"outro", source="s3://x/a"), "same_source"),
        (_draft(a, "Outro título", CONTRACTS.encode()), "same_file"),
        (_draft(a, "Manual de Rescisão Contratual 2024.", b"novo conteudo"), "similar_title"),
    ]
    for draft, reason in cases:
        with pytest.raises(DuplicateDocument) as refused:
            pipeline.ingest(draft, b"novo conteudo")
        assert refused.value.reason == reason
        assert refused.value.existing_id == first.id

    # But a different title, or the same document in another tenant, is accepted
    other = pipeline.ingest(_draft(a, "Guia de Férias", b"ferias"), b"Guia de ferias.")
    theirs = pipeline.ingest(
        _draft(b, "Manual de Rescisão Contratual 2024", CONTRACTS.encode(), source="s3://x/a"),
        CONTRACTS.encode(),
    )
    assert (other.status, theirs.status) == ("ready", "ready")


def test_the_duplicate_check_is_backed_by_the_trigram_index(db, owner) -> None:
    # Given 20,000 global documents
    owner.execute(
        """
        INSERT INTO knowledge.documents (title, source, file_sha256)
        SELECT md5(g::text) || ' ' || md5((g + 1)::text), 'src-' || g,
               encode(sha256(g::text::bytea), 'hex')
        FROM generate_series(1, 20000) AS g
        """
    )
    owner.execute("ANALYZE knowledge.documents")

    # When the duplicate check of the global scope is planned
    with owner.transaction():
        owner.execute("SELECT set_config('pg_trgm.similarity_threshold', '0.9', true)")
        plan = "\n".join(
            row["QUERY PLAN"]
            for row in owner.execute(
                "EXPLAIN " + _DUPLICATE_SQL.format(scope="d.tenant_id IS NULL"),
                {
                    "tenant": None,
                    "source": "s",
                    "sha": "0" * 64,
                    "title": "c4ca4238a0b923820dcc509a6f75849b",
                },
            ).fetchall()
        )

    # Then the similar-title branch reads the trigram index, not the table
    assert "documents_title_trgm_idx" in plan, plan


def test_the_vector_index_is_built_by_parallel_workers(owner) -> None:
    # Given the embeddings' main fork, which holds no vector (they live in TOAST) and so stays
    # under min_parallel_table_scan_size however many rows the table holds
    # When PostgreSQL sizes a CREATE INDEX on it, Then the table's own setting asks for helpers
    row = owner.execute(
        """
        SELECT c.reloptions FROM pg_class AS c
        WHERE c.oid = 'knowledge.embeddings'::regclass
        """
    ).fetchone()
    assert row is not None
    assert "parallel_workers=2" in (row["reloptions"] or [])


def test_hybrid_search_returns_the_chunks_that_answer(db, tenants, gateway) -> None:
    # Given three documents of tenant A
    a, _ = tenants
    pipeline = _runtime_pipeline(db, gateway)
    for title, text in (("Contratos", CONTRACTS), ("Tributos", TAXES), ("Privacidade", PRIVACY)):
        assert pipeline.ingest(_draft(a, title, text.encode()), text.encode()).status == "ready"

    # When A asks questions sharing words with one passage each
    cases = {
        "Qual é o prazo do aviso prévio na rescisão?": "aviso prévio",
        "Como funciona o Simples Nacional?": "Simples Nacional",
        "Posso pedir a eliminação dos meus dados pessoais?": "eliminação",
    }
    for question, expected in cases.items():
        found = _search(db, a, gateway, question)
        # Then the best chunk holds the answer, found by both rankings
        assert expected in found[0].content, (question, found[0].content)
        assert found[0].semantic_rank is not None
        assert found[0].lexical_rank is not None
        assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)


def test_a_tenant_never_sees_another_tenants_chunks(db, tenants, gateway) -> None:
    # Given a document of tenant A
    a, b = tenants
    _runtime_pipeline(db, gateway).ingest(_draft(a, "Tributos", TAXES.encode()), TAXES.encode())

    # When B searches with A's exact words, Then nothing of A comes back
    assert _search(db, b, gateway, "lucro presumido receita bruta Simples Nacional") == []
    # And B's direct reads of the tables see no row of A either (RLS as the runtime role)
    factory = runtime_uow_factory(db)
    with factory(b.id) as uow:
        counts = uow.conn.execute(
            """
            SELECT (SELECT count(*) FROM knowledge.documents) AS documents,
                   (SELECT count(*) FROM knowledge.chunks) AS chunks,
                   (SELECT count(*) FROM knowledge.embeddings) AS embeddings
            """
        ).fetchone()
        assert counts == {"documents": 0, "chunks": 0, "embeddings": 0}
        assert uow.knowledge.get(_search(db, a, gateway, "Simples Nacional")[0].document_id) is None


def test_global_documents_are_read_by_every_tenant_and_written_only_by_operators(
    db, tenants, gateway
) -> None:
    # Given a global document ingested by an operator
    a, b = tenants
    document = _operator_pipeline(db, gateway).ingest(
        _draft(None, "Lei Geral de Proteção de Dados", PRIVACY.encode()), PRIVACY.encode()
    )
    assert document.status == "ready"

    # Then both tenants find it
    for tenant in (a, b):
        found = _search(db, tenant, gateway, "eliminação dos dados pessoais")
        assert found
        assert found[0].document_id == document.id
        assert found[0].tenant_id is None

    # But the runtime role can neither add, change nor delete global rows
    factory = runtime_uow_factory(db)
    with factory(None) as uow, pytest.raises(psycopg.errors.InsufficientPrivilege):
        uow.knowledge.create_document(_draft(None, "Global falso", b"x"))
    with factory(a.id) as uow, pytest.raises(ValueError, match="another scope"):
        uow.knowledge.create_document(_draft(None, "Global falso", b"x"))
    with factory(a.id) as uow:
        changed = uow.conn.execute(
            "UPDATE knowledge.documents SET title = 'hijacked' WHERE id = %s", (document.id,)
        ).rowcount
        deleted = uow.conn.execute(
            "DELETE FROM knowledge.chunks WHERE document_id = %s", (document.id,)
        ).rowcount
        uow.commit()
    assert (changed, deleted) == (0, 0)
    # And a tenant cannot hang its own chunk on the global document
    with factory(a.id) as uow, pytest.raises(psycopg.errors.ForeignKeyViolation):
        uow.conn.execute(
            """
            INSERT INTO knowledge.chunks (tenant_id, document_id, chunk_index, content, token_count)
            VALUES (%s, %s, 99, 'intruso', 1)
            """,
            (a.id, document.id),
        )


def test_a_tenant_filter_still_returns_k_results_with_iterative_scans(db, tenants) -> None:
    # Given 950 chunks of tenant B and 50 of tenant A (5%), all near the same point
    a, b = tenants
    rng = random.Random(1536)
    centre = unit_vector(rng)
    for tenant, count in ((b, 950), (a, 50)):
        with OwnerUnitOfWork(db, tenant.id) as uow:
            document_id = uow.knowledge.create_document(
                _draft(tenant, f"Massa {tenant.slug}", tenant.slug.encode())
            )
            uow.knowledge.store_chunks(
                [
                    (
                        document_id,
                        [
                            EmbeddedChunk(ChunkDraft(i, f"trecho {i}", 2), near(centre, rng, 0.02))
                            for i in range(count)
                        ],
                    )
                ],
                model=MODEL,
            )
            uow.commit()
    factory = runtime_uow_factory(db)

    # (the HNSW index is the only plan left: no sort of a tenant's rows, no sequential scan)
    force_hnsw = ("SET LOCAL enable_sort = off", "SET LOCAL enable_seqscan = off")

    # When A asks for 10 through the HNSW path (no exact scan, however few A's rows) with a
    # small ef_search, Then iterative scans still return 10 of A's
    with factory(a.id) as uow:
        for statement in force_hnsw:
            uow.conn.execute(statement)
        found = search_in(
            uow.conn, text="", embedding=centre, model=MODEL, k=10, ef_search=40, exact_rows=0
        )
    assert len(found) == 10
    assert {r.tenant_id for r in found} == {a.id}

    # (and without iterative scans the same index scan comes back short: the test can fail)
    with factory(a.id) as uow:
        for statement in force_hnsw:
            uow.conn.execute(statement)
        uow.conn.execute("SET LOCAL hnsw.ef_search = 40")
        uow.conn.execute("SET LOCAL hnsw.iterative_scan = off")
        rows = uow.conn.execute(
            """
            SELECT e.chunk_id FROM knowledge.embeddings AS e
            WHERE e.indexed
              AND e.embedding_model = %s AND (e.tenant_id IS NULL OR e.tenant_id = %s)
            ORDER BY e.embedding::halfvec(1536) <=> %s::vector::halfvec(1536) LIMIT 40
            """,
            (MODEL, a.id, str(centre)),
        ).fetchall()
    assert len(rows) < 10


def test_ingestion_is_all_or_nothing(db, tenants, gateway, monkeypatch) -> None:
    # Given a store that fails after its chunks were written, inside the transaction
    a, _ = tenants
    original = KnowledgeRepository.store_chunks

    def store_then_fail(self, documents, *, model, indexed=True):
        original(self, documents, model=model, indexed=indexed)
        raise RuntimeError("disk full")

    monkeypatch.setattr(KnowledgeRepository, "store_chunks", store_then_fail)

    # When a document is ingested
    document = _runtime_pipeline(db, gateway).ingest(
        _draft(a, "Contratos", CONTRACTS.encode()), CONTRACTS.encode()
    )

    # Then it is failed with the reason, and none of its chunks or embeddings exist
    assert (document.status, document.error, document.chunk_count) == (
        "failed",
        "RuntimeError",
        0,
    )
    with db.owner() as owner:
        counts = owner.execute(
            """
            SELECT (SELECT count(*) FROM knowledge.chunks WHERE document_id = %(id)s) AS chunks,
                   (SELECT count(*) FROM knowledge.embeddings) AS embeddings
            """,
            {"id": document.id},
        ).fetchone()
    assert counts == {"chunks": 0, "embeddings": 0}

    # And once the fault is gone the same upload restarts the failed document
    monkeypatch.setattr(KnowledgeRepository, "store_chunks", original)
    again = _runtime_pipeline(db, gateway).ingest(
        _draft(a, "Contratos", CONTRACTS.encode()), CONTRACTS.encode()
    )
    assert (again.id, again.status) == (document.id, "ready")
    assert again.chunk_count > 1


def test_an_embedding_failure_midway_stores_nothing(db, tenants, gateway) -> None:
    a, _ = tenants

    class FailingSecondBatch:
        embedding_model = MODEL

        def embed(self, texts):
            vectors = gateway.embed(texts[:1])
            raise RuntimeError(f"provider dropped the batch after {len(vectors)}")

    pipeline = IngestionPipeline(runtime_uow_factory(db), FailingSecondBatch(), max_tokens=40)
    document = pipeline.ingest(_draft(a, "Tributos", TAXES.encode()), TAXES.encode())
    assert document.status == "failed"
    with db.owner() as owner:
        row = owner.execute("SELECT count(*) AS n FROM knowledge.chunks").fetchone()
    assert row == {"n": 0}


def test_a_portuguese_pdf_is_ingested_and_found(db, tenants, gateway) -> None:
    a, _ = tenants
    pdf = portuguese_pdf(
        [
            "Política de reembolso da Acme.",
            "O reembolso é concedido em até trinta dias após a compra.",
            "Não há reembolso para serviços já prestados.",
        ]
    )
    document = _runtime_pipeline(db, gateway).ingest(
        _draft(a, "Política de reembolso", pdf, content_type="application/pdf"), pdf
    )
    assert document.status == "ready"
    found = _search(db, a, gateway, "prazo de reembolso após a compra")
    assert "reembolso é concedido em até trinta dias" in found[0].content


def test_an_unreadable_document_is_marked_failed(db, tenants, gateway) -> None:
    a, _ = tenants
    document = _runtime_pipeline(db, gateway).ingest(
        _draft(a, "Quebrado", b"%PDF-1.4 garbage", content_type="application/pdf"),
        b"%PDF-1.4 garbage",
    )
    assert (document.status, document.error) == ("failed", "the PDF could not be read")


def test_the_convention_check_requires_the_global_read_policy(db) -> None:
    with psycopg.connect(db.owner_url, autocommit=True) as owner:
        assert convention_violations(owner) == []
        owner.execute("DROP POLICY global_read ON knowledge.chunks")
        violations = convention_violations(owner)
    assert violations == [
        "knowledge.chunks.tenant_id: no read-only policy for the global rows (tenant_id IS NULL)"
    ]


def test_pgvector_is_registered_on_test_connections(db) -> None:
    with db.owner() as owner:
        register_vector(owner)
        assert owner.execute("SELECT '[1,2]'::vector AS v").fetchone()["v"].to_list() == [1, 2]
