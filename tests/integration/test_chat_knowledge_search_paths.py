"""The hybrid search's two paths, in versions 2 and 3 (knowledge.search_chunks_v2, migration
062, kept for code deployed before 065; knowledge.search_chunks_v3, migration 065, which the
code calls): the exact scan for a scope of few vectors and the HNSW scan otherwise, each with the
tenant-or-global rule; the count that picks one; the settings it leaves as they were; who may
call it; and the search sent with BEGIN by the knowledge unit of work."""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from lambdas.chat.unit_of_work import ChatUnitOfWork
from lambdas.shared.scope import RequestScope
from tests.support.chat import (
    INDEX_SCANS_ONLY,
    function_access,
    near,
    runtime_database,
    runtime_plans,
    search_in,
    store_near,
    unit_vector,
)
from tests.support.factories import TestTenant, create_tenant

MODEL = "search-paths-test"
VERSIONS = ("v2", "v3")
SIGNATURE = "(public.vector, text, text, integer, integer, integer, integer, integer)"
CALL = """
    SELECT chunk_id, semantic_rank, lexical_rank, score, document_id, tenant_id
    FROM knowledge.search_chunks_{version}(
        %(embedding)s::vector, %(model)s, %(text)s, 40, 60, %(k)s, 100, %(exact_rows)s)
"""
EXACT = 1_000_000  # every scope of these tests is searched exactly
HNSW = 0  # no scope is


def _store(db, tenant: TestTenant | None, centre: list[float], count: int, seed: int) -> uuid.UUID:
    return store_near(db, tenant.id if tenant else None, centre, count, seed=seed, model=MODEL)


def _call(
    db,
    tenant_setting: str | None,
    embedding: list[float],
    *,
    version: str,
    exact_rows: int,
    text: str = "contrato prazo",
    k: int = 10,
) -> list[dict[str, Any]]:
    """The function called by the runtime role in a transaction with this tenant setting."""
    with psycopg.connect(db.runtime_url, row_factory=dict_row) as conn:
        if tenant_setting is not None:
            conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (tenant_setting,))
        return conn.execute(
            CALL.format(version=version),
            {
                "embedding": str(embedding),
                "model": MODEL,
                "text": text,
                "k": k,
                "exact_rows": exact_rows,
            },
        ).fetchall()


def _plans(
    db, tenant_id: uuid.UUID, embedding: list[float], *, version: str, exact_rows: int
) -> str:
    """The plans of the statements the function ran, as the runtime role (auto_explain)."""
    with runtime_plans(db, tenant_id, settings=INDEX_SCANS_ONLY) as (conn, notices):
        conn.execute(
            CALL.format(version=version),
            {
                "embedding": str(embedding),
                "model": MODEL,
                "text": "",
                "k": 10,
                "exact_rows": exact_rows,
            },
        ).fetchall()
    return "\n".join(notices)


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tenants(owner: psycopg.Connection[Any]) -> tuple[TestTenant, TestTenant]:
    return create_tenant(owner), create_tenant(owner)


@pytest.mark.parametrize("exact_rows", [EXACT, HNSW], ids=["exact", "hnsw"])
def test_each_path_returns_the_tenants_and_the_global_chunks_only(
    db, tenants, version: str, exact_rows: int
) -> None:
    # Given a document of tenant A and a global one, near the same point and sharing words
    a, b = tenants
    centre = unit_vector(random.Random(62))
    a_document = _store(db, a, centre, 6, seed=1)
    global_document = _store(db, None, centre, 6, seed=2)

    # When A searches, Then it gets its own and the global chunks
    mine = _call(db, str(a.id), centre, version=version, exact_rows=exact_rows)
    assert {r["document_id"] for r in mine} == {a_document, global_document}
    assert len(mine) == 10
    # When B searches with A's words and point, Then only the global chunks, never A's
    theirs = _call(db, str(b.id), centre, version=version, exact_rows=exact_rows)
    assert {r["document_id"] for r in theirs} == {global_document}
    assert {r["tenant_id"] for r in theirs} == {None}
    # When no tenant is set (or an empty one), Then nothing, not even the global chunks
    assert _call(db, None, centre, version=version, exact_rows=exact_rows) == []
    assert _call(db, "", centre, version=version, exact_rows=exact_rows) == []


@pytest.mark.parametrize("exact_rows", [EXACT, HNSW], ids=["exact", "hnsw"])
def test_a_tenant_with_no_chunk_of_its_own_sees_no_other_tenants(
    db, tenants, version: str, exact_rows: int
) -> None:
    # Given only tenant A's chunks
    a, b = tenants
    centre = unit_vector(random.Random(63))
    _store(db, a, centre, 12, seed=3)

    # Then B, asking with A's point and words, gets nothing on either path
    assert _call(db, str(b.id), centre, version=version, exact_rows=exact_rows) == []
    assert len(_call(db, str(a.id), centre, version=version, exact_rows=exact_rows)) == 10


def test_the_scope_size_picks_the_path_at_the_threshold(db, tenants, version: str) -> None:
    # Given tenant A's 8 chunks and 4 global ones (12 visible), and B's 20 (not visible to A)
    a, b = tenants
    centre = unit_vector(random.Random(64))
    _store(db, a, centre, 8, seed=4)
    _store(db, None, centre, 4, seed=5)
    _store(db, b, centre, 20, seed=6)

    # When A searches with the threshold at its 12 visible rows, Then an exact scan, through
    # the index led by tenant_id, and no HNSW scan
    at_threshold = _plans(db, a.id, centre, version=version, exact_rows=12)
    assert "embeddings_hnsw_idx" not in at_threshold, at_threshold
    assert "embeddings_chunk_model_key" in at_threshold, at_threshold
    # When the threshold is one less (B's rows are not counted for A), Then the HNSW scan
    below = _plans(db, a.id, centre, version=version, exact_rows=11)
    assert "Index Scan using embeddings_hnsw_idx" in below, below


def test_the_exact_path_ranks_by_the_exact_distance(db, tenants, owner, version: str) -> None:
    # Given tenant A's, tenant B's and global chunks around one point
    a, b = tenants
    centre = unit_vector(random.Random(65))
    _store(db, a, centre, 25, seed=7)
    _store(db, b, centre, 25, seed=8)
    _store(db, None, centre, 25, seed=9)
    query = near(centre, random.Random(66), 0.05)

    # When A searches exactly, with text that matches nothing (the vector ranking alone)
    got = _call(db, str(a.id), query, version=version, exact_rows=EXACT, text="xyzzy", k=10)

    # Then its ranking is the 10 nearest of A's and the global rows by cosine distance
    expected = owner.execute(
        """
        SELECT e.chunk_id FROM knowledge.embeddings AS e
        WHERE e.embedding_model = %(model)s AND (e.tenant_id IS NULL OR e.tenant_id = %(tenant)s)
        ORDER BY e.embedding <=> %(query)s::vector, e.chunk_id
        LIMIT 10
        """,
        {"model": MODEL, "tenant": a.id, "query": str(query)},
    ).fetchall()
    assert [r["chunk_id"] for r in got] == [r["chunk_id"] for r in expected]
    assert [r["semantic_rank"] for r in got] == list(range(1, 11))


def test_the_function_leaves_the_callers_hnsw_settings_as_they_were(
    db, tenants, version: str
) -> None:
    # Given tenant A's chunks and a transaction with its own HNSW settings
    a, _ = tenants
    centre = unit_vector(random.Random(67))
    _store(db, a, centre, 12, seed=10)
    with psycopg.connect(db.runtime_url, row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(a.id),))
        conn.execute("SET LOCAL hnsw.ef_search = 17")
        conn.execute("SET LOCAL hnsw.iterative_scan = off")

        # When the HNSW path runs (it sets ef_search to 100 and an iterative scan)
        found = conn.execute(
            CALL.format(version=version),
            {"embedding": str(centre), "model": MODEL, "text": "", "k": 10, "exact_rows": HNSW},
        ).fetchall()

        # Then it found 10 and the transaction's settings are back
        settings = conn.execute(
            "SELECT current_setting('hnsw.ef_search') AS ef,"
            " current_setting('hnsw.iterative_scan') AS scan"
        ).fetchone()
    assert len(found) == 10
    assert settings == {"ef": "17", "scan": "off"}


def test_only_the_runtime_role_may_execute_the_function(db, owner, version: str) -> None:
    # Then the runtime role may, nobody else may, and the function runs as its own role
    access = function_access(owner, f"knowledge.search_chunks_{version}{SIGNATURE}")
    assert {key: access[key] for key in ("runtime", "stranger", "definer", "owner")} == {
        "runtime": True,
        "stranger": False,
        "definer": True,
        "owner": "alquimista_knowledge_search",
    }


def test_the_vectors_are_stored_in_the_row(db, tenants, owner) -> None:
    # Given tenant A's chunks stored after migration 062
    a, _ = tenants
    _store(db, a, unit_vector(random.Random(68)), 3, seed=11)

    # Then the vector column is PLAIN and the table's TOAST holds nothing
    storage = owner.execute(
        """
        SELECT a.attstorage, c.reltoastrelid::regclass::text AS toast
        FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
        WHERE a.attrelid = 'knowledge.embeddings'::regclass AND a.attname = 'embedding'
        """
    ).fetchone()
    assert storage is not None
    assert storage["attstorage"] == "p"
    toasted = owner.execute(f"SELECT count(*) AS n FROM {storage['toast']}").fetchone()
    assert toasted == {"n": 0}
    # (the same vectors before 062, as an unchanged column stores them, go to TOAST: the test
    # can fail)
    owner.execute("ALTER TABLE knowledge.embeddings ALTER COLUMN embedding SET STORAGE EXTERNAL")
    _store(db, a, unit_vector(random.Random(70)), 3, seed=14)
    toasted = owner.execute(f"SELECT count(*) AS n FROM {storage['toast']}").fetchone()
    assert toasted is not None
    assert toasted["n"] > 0


def test_the_unit_of_work_sends_the_search_with_begin(db, tenants) -> None:
    # Given a document of tenant A and a global one
    a, b = tenants
    centre = unit_vector(random.Random(69))
    a_document = _store(db, a, centre, 6, seed=12)
    global_document = _store(db, None, centre, 6, seed=13)
    database = runtime_database(db)
    scope = RequestScope(lambda: database)
    search: dict[str, Any] = {"text": "contrato", "embedding": centre, "model": MODEL, "k": 10}

    def work(tenant: TestTenant) -> ChatUnitOfWork:
        return ChatUnitOfWork(scope, tenant.id, default_monthly_tokens=1_000)

    # When A and B search through the chat's units of work, the search sent with BEGIN
    with work(a).searching(**search) as mine_work:
        mine = mine_work.found
        same = search_in(mine_work.conn, **search)
        mine_work.commit()
    with work(b).searching(**search) as theirs_work:
        theirs = theirs_work.found
        theirs_work.commit()

    # Then A's is what the same statement finds sent on its own, and B never sees A's chunks
    assert mine == same
    assert {c.document_id for c in mine} == {a_document, global_document}
    assert {c.document_id for c in theirs} == {global_document}
    # And a unit of work given no search has nothing found
    with work(a) as plain, pytest.raises(RuntimeError):
        _ = plain.found
    database.close()
