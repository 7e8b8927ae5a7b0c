"""The hybrid search function (knowledge.search_chunks_v1, migration 045): what it lets the
runtime role see, who may call it, that its full-text branch probes the GIN index under
row-level security, and that its fusion is the one the inline query computed."""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.chat import (
    function_access,
    near,
    runtime_plans,
    searched,
    store_near,
    unit_vector,
)
from tests.support.factories import TestTenant, create_tenant

MODEL = "search-function-test"
FUNCTION = "knowledge.search_chunks_v1(public.vector, text, text, integer, integer, integer)"
CALL = """
    SELECT chunk_id, semantic_rank, lexical_rank, score, document_id, tenant_id
    FROM knowledge.search_chunks_v1(%(embedding)s::vector, %(model)s, %(text)s, 40, 60, 10)
"""

# The search as one inline statement, as the repository ran it before migration 045: the
# reference the function's fusion must reproduce (run by the owner, with the tenant spelled out).
REFERENCE = """
    WITH semantic AS MATERIALIZED (
        SELECT e.chunk_id,
               e.embedding::halfvec(1536) <=> %(embedding)s::vector::halfvec(1536) AS distance
        FROM knowledge.embeddings AS e
        WHERE e.embedding_model = %(model)s
          AND (e.tenant_id IS NULL OR e.tenant_id = %(tenant)s)
        ORDER BY distance LIMIT 40
    ), semantic_ranked AS (
        SELECT chunk_id, row_number() OVER (ORDER BY distance, chunk_id) AS rank FROM semantic
    ), lexical AS (
        SELECT c.id AS chunk_id,
               row_number() OVER (ORDER BY ts_rank_cd(c.search_vector, q.query) DESC, c.id)
                   AS rank
        FROM knowledge.chunks AS c,
             (SELECT replace(websearch_to_tsquery('portuguese', %(text)s)::text, ' & ', ' | ')
                     ::tsquery AS query) AS q
        WHERE c.search_vector @@ q.query
          AND (c.tenant_id IS NULL OR c.tenant_id = %(tenant)s)
        ORDER BY rank LIMIT 40
    ), fused AS (
        SELECT chunk_id, s.rank AS semantic_rank, l.rank AS lexical_rank,
               coalesce(1.0 / (60 + s.rank), 0) + coalesce(1.0 / (60 + l.rank), 0) AS score
        FROM semantic_ranked AS s FULL JOIN lexical AS l USING (chunk_id)
    )
    SELECT f.chunk_id, f.semantic_rank, f.lexical_rank, f.score::float8 AS score,
           c.document_id, c.tenant_id
    FROM fused AS f
    JOIN knowledge.chunks AS c ON c.id = f.chunk_id
    JOIN knowledge.documents AS d ON d.id = c.document_id
    WHERE d.status = 'ready'
    ORDER BY f.score DESC, f.chunk_id
    LIMIT 10
"""


def _store(db, tenant: TestTenant | None, centre: list[float], count: int, seed: int) -> uuid.UUID:
    return store_near(db, tenant.id if tenant else None, centre, count, seed=seed, model=MODEL)


def _call(
    db, tenant_setting: str | None, embedding: list[float], text: str
) -> list[dict[str, Any]]:
    """The function called by the runtime role in a transaction with this tenant setting."""
    with psycopg.connect(db.runtime_url, row_factory=dict_row) as conn:
        if tenant_setting is not None:
            conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (tenant_setting,))
        return conn.execute(
            CALL, {"embedding": str(embedding), "model": MODEL, "text": text}
        ).fetchall()


@pytest.fixture
def tenants(owner: psycopg.Connection[Any]) -> tuple[TestTenant, TestTenant]:
    return create_tenant(owner), create_tenant(owner)


def test_the_function_returns_the_tenants_and_the_global_chunks_only(db, tenants) -> None:
    # Given a document of tenant A and a global one, near the same point and sharing words
    a, b = tenants
    centre = unit_vector(random.Random(45))
    a_document = _store(db, a, centre, 6, seed=1)
    global_document = _store(db, None, centre, 6, seed=2)

    # When A searches, Then it gets its own and the global chunks
    mine = _call(db, str(a.id), centre, "contrato prazo")
    assert {r["document_id"] for r in mine} == {a_document, global_document}
    # When B searches with A's words and point, Then only the global chunks
    theirs = _call(db, str(b.id), centre, "contrato prazo")
    assert theirs
    assert {r["document_id"] for r in theirs} == {global_document}
    assert {r["tenant_id"] for r in theirs} == {None}
    # When no tenant is set (or an empty one), Then nothing, not even the global chunks
    assert _call(db, None, centre, "contrato prazo") == []
    assert _call(db, "", centre, "contrato prazo") == []


def test_the_chats_search_goes_through_the_function_with_the_same_rule(db, tenants) -> None:
    # Given a document of tenant A
    a, b = tenants
    centre = unit_vector(random.Random(46))
    _store(db, a, centre, 5, seed=3)
    question: dict[str, Any] = {"text": "dados", "embedding": centre, "model": MODEL, "k": 3}

    # Then A finds it through the chat's unit of work, and B, asking with A's point and words,
    # gets nothing
    assert len(searched(db, a.id, **question)) == 3
    assert searched(db, b.id, **question) == []


def test_only_the_runtime_role_may_execute_the_function(db, owner) -> None:
    # Then the runtime role may, nobody else may, and the function runs as its own role
    # with a fixed search_path, planned with each call's values
    assert function_access(owner, FUNCTION) == {
        "runtime": True,
        "stranger": False,
        "definer": True,
        "owner": "alquimista_knowledge_search",
        "config": ["search_path=pg_catalog, pg_temp", "plan_cache_mode=force_custom_plan"],
    }


def test_the_full_text_branch_probes_the_gin_index_under_rls(db, tenants, owner) -> None:
    # Given a tenant's 2,000 chunks, of which a few hold the word asked for
    a, _ = tenants
    centre = unit_vector(random.Random(47))
    document_id = _store(db, a, centre, 20, seed=4)
    owner.execute(
        """
        INSERT INTO knowledge.chunks (tenant_id, document_id, chunk_index, content, token_count)
        SELECT %s, %s, 100 + g, 'texto comum número ' || g, 3 FROM generate_series(1, 2000) AS g
        """,
        (a.id, document_id),
    )
    owner.execute("ANALYZE knowledge.chunks")
    text_condition = """
        SELECT c.id FROM knowledge.chunks AS c
        WHERE c.search_vector @@ to_tsquery('portuguese', 'contrato')
    """

    # When the runtime role runs the function with only index plans allowed, the nested
    # statements' plans reported to the client (auto_explain)
    with runtime_plans(db, a.id, settings=("SET enable_seqscan = off",)) as (conn, notices):
        found = conn.execute(
            CALL, {"embedding": str(centre), "model": MODEL, "text": "contrato"}
        ).fetchall()
        # (the same condition in a statement of the runtime role's own cannot use the index:
        # RLS is applied first and `@@` is not LEAKPROOF, so the test can fail)
        direct = "\n".join(
            row["QUERY PLAN"] for row in conn.execute("EXPLAIN " + text_condition).fetchall()
        )

    # Then the function's plan probes chunks_search_idx, where a direct statement cannot
    assert any(r["lexical_rank"] is not None for r in found)
    plans = "\n".join(notices)
    assert "Bitmap Index Scan on chunks_search_idx" in plans, plans
    assert "chunks_search_idx" not in direct, direct


def test_the_fusion_is_the_inline_querys(db, tenants, owner) -> None:
    # Given tenant A's chunks, B's chunks and global ones around one point, sharing words
    a, b = tenants
    centre = unit_vector(random.Random(48))
    _store(db, a, centre, 30, seed=5)
    _store(db, b, centre, 30, seed=6)
    _store(db, None, centre, 30, seed=7)
    rng = random.Random(49)

    for question in ("contrato férias", "imposto sobre dados do titular", "prazo"):
        query = near(centre, rng, 0.05)
        # When the runtime role searches through the function as tenant A
        got = _call(db, str(a.id), query, question)
        # Then it returns what the inline query returns for A: ids, ranks and scores
        owner.execute("SET enable_indexscan = off")  # exact semantic ranking
        expected = owner.execute(
            REFERENCE,
            {"embedding": str(query), "model": MODEL, "text": question, "tenant": a.id},
        ).fetchall()
        owner.execute("RESET enable_indexscan")
        assert len(got) == 10
        assert [(r["chunk_id"], r["semantic_rank"], r["lexical_rank"]) for r in got] == [
            (r["chunk_id"], r["semantic_rank"], r["lexical_rank"]) for r in expected
        ]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected])
        assert any(r["lexical_rank"] is not None for r in got)
