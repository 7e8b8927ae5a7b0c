"""The hybrid search, version 3 (knowledge.search_chunks_v3, migration 065): the same rows as
version 2 in the same order, for less work: the HNSW statement without the branch for vectors not
indexed yet when the scope has none, and the chunks' text read for the best-ranked rows only,
until ``k`` of them are in ready documents. (Both paths, the tenant rule, the settings and the
grants are tested for both versions in test_chat_knowledge_search_paths.py.)"""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.chat import INDEX_SCANS_ONLY, near, runtime_plans, store_near, unit_vector
from tests.support.factories import TestTenant, create_tenant

MODEL = "search-v3-test"
CALL = """
    SELECT chunk_id, semantic_rank, lexical_rank, score, document_id, tenant_id, chunk_index,
           content, title
    FROM knowledge.search_chunks_{version}(
        %(embedding)s::vector, %(model)s, %(text)s, 40, 60, %(k)s, 40, %(exact_rows)s)
"""
EXACT = 1_000_000
HNSW = 0


def _call(
    db, tenant_id: uuid.UUID, embedding: list[float], *, version: str, exact_rows: int, text: str
) -> list[dict[str, Any]]:
    with psycopg.connect(db.runtime_url, row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))
        return conn.execute(
            CALL.format(version=version),
            {
                "embedding": str(embedding),
                "model": MODEL,
                "text": text,
                "k": 10,
                "exact_rows": exact_rows,
            },
        ).fetchall()


def _hnsw_plan(db, tenant_id: uuid.UUID, embedding: list[float]) -> str:
    """The plan of v3's HNSW statement, as the runtime role runs it (auto_explain)."""
    with runtime_plans(db, tenant_id, settings=INDEX_SCANS_ONLY) as (conn, notices):
        conn.execute(
            CALL.format(version="v3"),
            {"embedding": str(embedding), "model": MODEL, "text": "", "k": 10, "exact_rows": HNSW},
        ).fetchall()
    plans = [n for n in notices if "embeddings_hnsw_idx" in n]
    assert len(plans) == 1, notices
    return plans[0]


def _unindex(owner: psycopg.Connection[Any], document_id: uuid.UUID) -> None:
    """The document's vectors as the ingestion Lambda stores them: waiting for the indexing job."""
    owner.execute(
        "UPDATE knowledge.embeddings SET indexed = false WHERE chunk_id IN "
        "(SELECT id FROM knowledge.chunks WHERE document_id = %s)",
        (document_id,),
    )


def _hide_at(
    owner: psycopg.Connection[Any], document_id: uuid.UUID, status: str, at: list[float]
) -> None:
    """The document not ready (``status``), every one of its vectors moved onto ``at``."""
    owner.execute("UPDATE knowledge.documents SET status = %s WHERE id = %s", (status, document_id))
    owner.execute(
        "UPDATE knowledge.embeddings AS e SET embedding = %s::vector FROM knowledge.chunks AS c "
        "WHERE c.id = e.chunk_id AND c.document_id = %s",
        (str(at), document_id),
    )


@pytest.fixture
def tenants(owner: psycopg.Connection[Any]) -> tuple[TestTenant, TestTenant]:
    return create_tenant(owner), create_tenant(owner)


@pytest.mark.parametrize("exact_rows", [EXACT, HNSW], ids=["exact", "hnsw"])
@pytest.mark.parametrize("text", ["contrato prazo", "xyzzy"], ids=["words", "no-word"])
def test_v3_returns_what_v2_returns(db, tenants, owner, exact_rows: int, text: str) -> None:
    # Given tenant A's, tenant B's and global chunks around one point; some of A's stored
    # unindexed (waiting for the indexing job); and a document of A's nearest the point that is
    # not ready (its chunks rank first, and must not be returned)
    a, b = tenants
    centre = unit_vector(random.Random(90))
    store_near(db, a.id, centre, 30, seed=20, model=MODEL)
    pending = store_near(db, a.id, centre, 8, seed=21, model=MODEL)
    store_near(db, b.id, centre, 30, seed=22, model=MODEL)
    store_near(db, None, centre, 30, seed=23, model=MODEL)
    processing = store_near(db, a.id, centre, 12, seed=24, model=MODEL)
    _unindex(owner, pending)
    _hide_at(owner, processing, "processing", centre)

    # When A asks, from several points near the centre, through both versions
    for seed in range(5):
        query = near(centre, random.Random(100 + seed), 0.05)
        v2 = _call(db, a.id, query, version="v2", exact_rows=exact_rows, text=text)
        v3 = _call(db, a.id, query, version="v3", exact_rows=exact_rows, text=text)

        # Then the same ten rows in the same order, text and title included; none of B's, none
        # of the document that is not ready
        assert v3 == v2
        assert len(v3) == 10
        assert {r["tenant_id"] for r in v3} <= {a.id, None}
        assert processing not in {r["document_id"] for r in v3}


def test_the_best_ranked_rows_are_read_until_k_are_ready(db, tenants, owner) -> None:
    # Given 12 chunks of A's document that is not ready, nearest the point, and 15 ready ones
    a, _ = tenants
    centre = unit_vector(random.Random(91))
    ready = store_near(db, a.id, centre, 15, seed=25, model=MODEL)
    hidden = store_near(db, a.id, centre, 12, seed=26, model=MODEL)
    _hide_at(owner, hidden, "failed", centre)

    # When A searches
    found = _call(db, a.id, centre, version="v3", exact_rows=EXACT, text="xyzzy")

    # Then ten of the ready document's chunks, ranked 13th and below among the candidates
    assert [r["document_id"] for r in found] == [ready] * 10
    assert min(r["semantic_rank"] for r in found) == 13


def test_the_hnsw_statement_has_the_unindexed_branch_only_when_the_scope_has_such_vectors(
    db, tenants, owner
) -> None:
    # Given tenant A's chunks, all indexed, and tenant B's chunk stored unindexed
    a, b = tenants
    centre = unit_vector(random.Random(92))
    store_near(db, a.id, centre, 12, seed=27, model=MODEL)
    theirs = store_near(db, b.id, centre, 1, seed=28, model=MODEL)
    _unindex(owner, theirs)

    # Then A's search reads the graph alone (B's unindexed vector is not A's concern)
    alone = _hnsw_plan(db, a.id, centre)
    assert "Append" not in alone, alone
    # When one of A's vectors is stored unindexed, Then it is compared beside the graph's
    mine = store_near(db, a.id, centre, 1, seed=29, model=MODEL)
    _unindex(owner, mine)
    both = _hnsw_plan(db, a.id, centre)
    assert "Append" in both, both
    found = _call(db, a.id, centre, version="v3", exact_rows=HNSW, text="xyzzy")
    assert mine in {r["document_id"] for r in found}
