"""Deferred indexing (migrations 062 and 063): the ingestion Lambda stores vectors outside the
HNSW graph, searchable at once (exactly) on both search paths and only in their scope; the
``index_chat_embeddings`` job inserts them into the graph in every tenant; every other writer
keeps writing indexed vectors."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any, cast

import psycopg
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.chat.ingestion import IngestionPipeline
from lambdas.chat.knowledge_repository import index_pending
from lambdas.chat.models import ChunkDraft, DocumentDraft, EmbeddedChunk
from lambdas.jobs.handler import lambda_handler
from scripts.devstack.aws_resources import LocalResources
from scripts.devstack.gateway import LambdaContextStub
from tests.integration.conftest import World
from tests.support.chat import (
    function_access,
    near,
    runtime_database,
    runtime_uow_factory,
    search_in,
    unit_vector,
)
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, create_tenant

Conn = psycopg.Connection[dict[str, Any]]
MODEL = "deferred-indexing-test"
EXACT = 1_000_000
HNSW = 0


class _Precomputed:
    embedding_model = MODEL

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise AssertionError("the chunks come embedded")


def _ingest(
    db: TestDatabase, tenant: TestTenant, centre: list[float], count: int, *, defer: bool
) -> uuid.UUID:
    """A tenant's document of ``count`` chunks near ``centre``, through the pipeline as the
    runtime role (the ingestion Lambda's path when ``defer``)."""
    pipeline = IngestionPipeline(runtime_uow_factory(db), _Precomputed(), defer_indexing=defer)
    document_id = pipeline.register(
        DocumentDraft(
            tenant_id=tenant.id,
            title=f"Documento {uuid.uuid4()}",
            source=f"test://{uuid.uuid4()}",
            file_sha256=uuid.uuid4().hex * 2,
        )
    )
    rng = random.Random(count)
    chunks = [
        EmbeddedChunk(ChunkDraft(i, f"trecho {i}", 2), near(centre, rng, 0.05))
        for i in range(count)
    ]
    pipeline.store(tenant.id, [(document_id, chunks)])
    return document_id


def _flags(owner: Conn, document_id: uuid.UUID) -> list[bool]:
    rows = owner.execute(
        """
        SELECT e.indexed FROM knowledge.embeddings AS e
        JOIN knowledge.chunks AS c ON c.id = e.chunk_id
        WHERE c.document_id = %s
        """,
        (document_id,),
    ).fetchall()
    return sorted({row["indexed"] for row in rows})


def _search(db: TestDatabase, tenant: TestTenant, query: list[float], exact_rows: int) -> set[Any]:
    with runtime_uow_factory(db)(tenant.id) as uow:
        found = search_in(
            uow.conn, text="", embedding=query, model=MODEL, k=10, exact_rows=exact_rows
        )
    return {chunk.document_id for chunk in found}


@pytest.fixture
def tenants(owner: Conn) -> tuple[TestTenant, TestTenant]:
    return create_tenant(owner), create_tenant(owner)


@pytest.mark.parametrize("exact_rows", [EXACT, HNSW], ids=["exact", "hnsw"])
def test_a_deferred_document_is_searchable_at_once_in_its_tenant_only(
    db: TestDatabase, owner: Conn, tenants: tuple[TestTenant, TestTenant], exact_rows: int
) -> None:
    # Given tenant A's indexed document far from the question and its deferred one near it,
    # and tenant B's indexed document near it too
    a, b = tenants
    rng = random.Random(63)
    centre, elsewhere = unit_vector(rng), unit_vector(rng)
    _ingest(db, a, elsewhere, 12, defer=False)
    deferred = _ingest(db, a, centre, 12, defer=True)
    b_document = _ingest(db, b, centre, 12, defer=False)
    assert _flags(owner, deferred) == [False]

    # When A and B ask near the deferred document, Then A finds it ahead of its indexed one
    # (the pending vectors compared exactly), and B never sees it
    assert _search(db, a, centre, exact_rows) == {deferred}
    assert _search(db, b, centre, exact_rows) == {b_document}


def test_the_job_indexes_every_tenants_pending_vectors_through_the_jobs_lambda(
    world: World, db: TestDatabase, owner: Conn, lambda_env: LocalResources
) -> None:
    # Given deferred documents of two tenants and an indexed one
    centre = unit_vector(random.Random(64))
    a_document = _ingest(db, world.a, centre, 7, defer=True)
    b_document = _ingest(db, world.b, centre, 5, defer=True)
    indexed = _ingest(db, world.b, centre, 3, defer=False)
    before = _search(db, world.a, centre, HNSW)

    # When the job runs, as EventBridge runs it
    context = cast("LambdaContext", LambdaContextStub(function_name="alquimista-dev-jobs"))
    report = lambda_handler({"job": "index_chat_embeddings"}, context)

    # Then it indexed the 12 pending vectors of both tenants, nothing else, and the same
    # search now reads them from the graph and finds the same document
    assert report == {**report, "ok": True, "affected": 12}
    assert (
        _flags(owner, a_document) == _flags(owner, b_document) == _flags(owner, indexed) == [True]
    )
    assert _search(db, world.a, centre, HNSW) == before == {a_document}
    # And a second run finds nothing left
    again = lambda_handler({"job": "index_chat_embeddings"}, context)
    assert again == {**again, "ok": True, "affected": 0}


def test_a_run_indexes_at_most_its_batch(
    db: TestDatabase, owner: Conn, tenants: tuple[TestTenant, TestTenant]
) -> None:
    # Given 9 pending vectors
    a, _ = tenants
    _ingest(db, a, unit_vector(random.Random(65)), 9, defer=True)
    database = runtime_database(db)
    conn, _ = database.begin(None, read_only=False)
    try:
        # When the runtime role, with no tenant, indexes 4 and then the rest
        first, rest = index_pending(conn, limit=4), index_pending(conn, limit=100)
        conn.commit()
    finally:
        database.close()

    # Then 4, then 5
    assert (first, rest) == (4, 5)
    pending = owner.execute(
        "SELECT count(*) AS n FROM knowledge.embeddings WHERE NOT indexed"
    ).fetchone()
    assert pending == {"n": 0}


def test_only_the_runtime_role_may_run_the_indexer_and_it_only_sets_the_flag(
    db: TestDatabase, owner: Conn
) -> None:
    function = "knowledge.index_pending_embeddings_v1(integer)"
    access = function_access(owner, function)
    rights = owner.execute(
        """
        SELECT has_column_privilege(%(owner)s, 'knowledge.embeddings', 'embedding', 'SELECT')
                   AS reads_vectors,
               has_column_privilege(%(owner)s, 'knowledge.embeddings', 'tenant_id', 'UPDATE')
                   AS moves_rows
        """,
        {"owner": access["owner"]},
    ).fetchone()
    assert (access["runtime"], access["stranger"], access["owner"]) == (
        True,
        False,
        "alquimista_knowledge_indexer",
    )
    assert rights == {"reads_vectors": False, "moves_rows": False}


def test_a_negative_batch_is_refused(db: TestDatabase) -> None:
    database = runtime_database(db)
    conn, _ = database.begin(None, read_only=False)
    try:
        with pytest.raises(psycopg.errors.InvalidRowCountInLimitClause):
            index_pending(conn, limit=-1)
    finally:
        database.close()
