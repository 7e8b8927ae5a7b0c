"""scripts/ingest_documents.py: bulk ingestion through the COPY staging table, a dry run that
names the duplicates, and a resumed run after a crash."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdas.chat.knowledge_repository import KnowledgeRepository
from lambdas.chat.llm import LlmGateway
from scripts import ingest_documents
from scripts.devstack.llm_server import RunningLlmServer, start_llm_server
from tests.support.chat import portuguese_pdf
from tests.support.factories import create_tenant

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def llm() -> Iterator[RunningLlmServer]:
    server = start_llm_server(embedding_model="offline-embedding")
    yield server
    server.stop()


@pytest.fixture
def gateway(llm: RunningLlmServer) -> LlmGateway:
    return LlmGateway(
        api_key=llm.api_key,
        base_url=llm.base_url,
        chat_model="offline-chat",
        embedding_model="offline-embedding",
        timeout_s=10,
        max_retries=0,
    )


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "leis"
    (folder / "sub").mkdir(parents=True)
    (folder / "clt_ferias.txt").write_text("Férias de trinta dias após doze meses de trabalho.")
    (folder / "lgpd.md").write_text("# LGPD\n\nO titular pode pedir a eliminação dos dados.")
    (folder / "sub" / "simples.html").write_text("<p>O Simples Nacional unifica tributos.</p>")
    (folder / "sub" / "reembolso.pdf").write_bytes(portuguese_pdf(["Reembolso em até 30 dias."]))
    (folder / "sub" / "copia.txt").write_text("Férias de trinta dias após doze meses de trabalho.")
    (folder / "notas.xlsx").write_bytes(b"ignored: not a supported type")
    return folder


def _run(args: list[str], db, gateway, capsys) -> tuple[int, str]:
    code = ingest_documents.main(
        [*args, "--database-url", db.owner_url, "--no-progress"], embedder=gateway
    )
    return code, capsys.readouterr().out


def _documents(owner) -> dict[str, str]:
    rows = owner.execute("SELECT title, status FROM knowledge.documents").fetchall()
    return {row["title"]: row["status"] for row in rows}


def test_a_dry_run_names_what_would_happen_and_changes_nothing(
    db, owner, library, gateway, capsys
) -> None:
    code, out = _run([str(library), "--global", "--dry-run"], db, gateway, capsys)
    assert code == 0
    assert "dry run: 4 to ingest, 0 already ready, 1 duplicates" in out
    assert _documents(owner) == {}


def test_global_documents_are_ingested_in_bulk_and_duplicates_reported(
    db, owner, library, gateway, capsys
) -> None:
    # When an operator ingests the folder as global documents
    code, out = _run([str(library), "--global"], db, gateway, capsys)

    # Then four documents are ready, the copy is refused as the same file, the xlsx ignored
    assert code == 0, out
    assert f"duplicate (same_file): {library / 'sub' / 'copia.txt'}" in out
    assert _documents(owner) == {
        "clt ferias": "ready",
        "lgpd": "ready",
        "simples": "ready",
        "reembolso": "ready",
    }
    row = owner.execute(
        """
        SELECT count(*) FILTER (WHERE c.tenant_id IS NULL) AS global_chunks,
               (SELECT count(*) FROM knowledge.embeddings) AS embeddings
        FROM knowledge.chunks AS c
        """
    ).fetchone()
    assert row["global_chunks"] == row["embeddings"] >= 4

    # And running it again skips everything as already ready; a dry run says so too
    code, out = _run([str(library), "--global"], db, gateway, capsys)
    assert "ingested 0 documents (0 chunks" in out
    assert "5 already ready" in out  # the copy's contents are ready too
    code, out = _run([str(library / "lgpd.md"), "--global", "--dry-run"], db, gateway, capsys)
    assert "dry run: 0 to ingest, 1 already ready" in out


def test_a_crashed_run_is_resumed(db, owner, library, gateway, capsys, monkeypatch) -> None:
    tenant = create_tenant(owner)
    original = KnowledgeRepository.store_chunks
    calls = {"n": 0}

    def crash_on_the_second_batch(self, documents, *, model, indexed=True):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the operator's laptop dies mid-run
        return original(self, documents, model=model, indexed=indexed)

    monkeypatch.setattr(KnowledgeRepository, "store_chunks", crash_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _run(
            [str(library), "--tenant", tenant.slug, "--batch-chunks", "1", "--writers", "0"],
            db,
            gateway,
            capsys,
        )
    statuses = _documents(owner)
    assert sorted(statuses.values()) == ["processing", "ready"]

    # When the operator runs it again, Then it finishes what was left
    monkeypatch.setattr(KnowledgeRepository, "store_chunks", original)
    code, out = _run([str(library), "--tenant", tenant.slug], db, gateway, capsys)
    assert code == 0, out
    assert "ingested 3 documents" in out
    assert "2 already ready" in out  # the first batch's document and its copy
    assert set(_documents(owner).values()) == {"ready"}
    assert owner.execute(
        "SELECT count(*) AS n FROM knowledge.documents WHERE tenant_id = %s", (tenant.id,)
    ).fetchone() == {"n": 4}


def test_a_failed_background_batch_stops_the_run_and_is_resumed(
    db, owner, library, gateway, capsys, monkeypatch
) -> None:
    tenant = create_tenant(owner)
    original = KnowledgeRepository.store_chunks
    calls = {"n": 0}

    def fail_the_second_batch(self, documents, *, model, indexed=True):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the server went away")
        return original(self, documents, model=model, indexed=indexed)

    # When a batch stored by a background writer fails
    monkeypatch.setattr(KnowledgeRepository, "store_chunks", fail_the_second_batch)
    with pytest.raises(RuntimeError, match="went away"):
        _run(
            [str(library), "--tenant", tenant.slug, "--batch-chunks", "1", "--writers", "2"],
            db,
            gateway,
            capsys,
        )

    # Then the run stops with it, the failed batch's document left processing (none of its
    # chunks stored) and every ready document complete
    statuses = _documents(owner)
    assert "processing" in statuses.values()
    assert "ready" in statuses.values()
    _assert_chunk_counts(owner, tenant.id)

    # And the next run finishes what was left
    monkeypatch.setattr(KnowledgeRepository, "store_chunks", original)
    code, out = _run([str(library), "--tenant", tenant.slug], db, gateway, capsys)
    assert code == 0, out
    assert set(_documents(owner).values()) == {"ready"}
    assert len(_documents(owner)) == 4
    _assert_chunk_counts(owner, tenant.id)


def _assert_chunk_counts(owner, tenant_id) -> None:
    """Every document holds exactly its chunk_count chunks (0 unless ready), each embedded."""
    rows = owner.execute(
        """
        SELECT d.status, d.chunk_count, count(c.id) AS chunks, count(e.id) AS vectors
        FROM knowledge.documents AS d
        LEFT JOIN knowledge.chunks AS c ON c.document_id = d.id
        LEFT JOIN knowledge.embeddings AS e ON e.chunk_id = c.id
        WHERE d.tenant_id = %s
        GROUP BY d.id
        """,
        (tenant_id,),
    ).fetchall()
    for row in rows:
        expected = row["chunk_count"] if row["status"] == "ready" else 0
        assert row["chunks"] == row["vectors"] == expected, row
        assert row["status"] != "ready" or row["chunks"] > 0, row


LOAD_INDEXES = ("embeddings_hnsw_idx", "chunks_search_idx")


def _load_indexes(owner) -> tuple[str | None, ...]:
    """The definitions of the indexes a --rebuild-index load drops (None when missing)."""
    rows = owner.execute(
        """
        SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'knowledge' AND indexname = ANY(%s)
        """,
        (list(LOAD_INDEXES),),
    ).fetchall()
    found = {row["indexname"]: row["indexdef"] for row in rows}
    return tuple(found.get(name) for name in LOAD_INDEXES)


def test_a_load_with_rebuild_index_builds_the_migrations_indexes_again(
    db, owner, library, gateway, capsys, monkeypatch
) -> None:
    migrated = _load_indexes(owner)
    assert None not in migrated
    original = KnowledgeRepository.store_chunks
    seen: list[tuple[str | None, ...]] = []

    def crash_on_the_second_batch(self, documents, *, model, indexed=True):
        seen.append(_load_indexes(owner))  # from the background writers' threads
        if len(seen) == 2:
            raise KeyboardInterrupt
        return original(self, documents, model=model, indexed=indexed)

    # When a load with --rebuild-index fails halfway
    monkeypatch.setattr(KnowledgeRepository, "store_chunks", crash_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _run(
            [str(library), "--global", "--rebuild-index", "--batch-chunks", "1"],
            db,
            gateway,
            capsys,
        )

    # Then the batches went in without the vector and full-text indexes, and both were built
    # again on the way out
    assert len(seen) >= 2
    assert set(seen) == {(None, None)}
    assert _load_indexes(owner) == migrated

    # And a run killed before it could rebuild leaves them to the next run, which builds them
    # first (each one: a crash may come between the two builds)
    monkeypatch.setattr(KnowledgeRepository, "store_chunks", original)
    for name in LOAD_INDEXES:
        owner.execute(f"DROP INDEX knowledge.{name}")
        code, out = _run([str(library), "--global"], db, gateway, capsys)
        assert code == 0, out
        assert _load_indexes(owner) == migrated
    # and the bulk load's vectors are all in it: the operators' path never defers indexing
    counts = owner.execute(
        "SELECT count(*) FILTER (WHERE NOT indexed) AS pending, count(*) AS stored"
        " FROM knowledge.embeddings"
    ).fetchone()
    assert counts["stored"] > 0
    assert counts["pending"] == 0
    # and the full-text index holds the rows stored while it was missing
    owner.execute("SET enable_seqscan = off")
    found = owner.execute(
        "SELECT count(*) AS n FROM knowledge.chunks"
        " WHERE search_vector @@ to_tsquery('portuguese', 'férias')"
    ).fetchone()
    assert found == {"n": 1}


def test_an_unknown_tenant_is_refused(db, library, gateway, capsys) -> None:
    with pytest.raises(LookupError, match="no tenant"):
        _run([str(library), "--tenant", "nobody"], db, gateway, capsys)


def test_help_describes_the_script() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/ingest_documents.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--dry-run" in result.stdout
    assert "COPY" in result.stdout


def test_background_writers_store_each_batch_in_its_own_scope(db, owner, gateway, tmp_path) -> None:
    # Given two tenants loaded through one BatchedStore and its two writers, switching scope
    # between them without waiting for the pending batch
    tenants = [create_tenant(owner), create_tenant(owner)]
    with (
        ingest_documents._connect(db.owner_url) as conn,
        ingest_documents._connect(db.owner_url) as first,
        ingest_documents._connect(db.owner_url) as second,
    ):
        pipeline = ingest_documents.writer_pipeline(conn, gateway)
        writers = [ingest_documents.writer_pipeline(c, gateway) for c in (first, second)]
        report = ingest_documents.Report()
        with ingest_documents.BatchedStore(
            pipeline, None, batch_chunks=1000, report=report, writers=writers
        ) as batches:
            for number, tenant in enumerate(tenants):
                batches.switch_scope(tenant.id)
                draft = ingest_documents._draft(
                    _text_file(
                        tmp_path / tenant.slug, f"Contrato {number} de prestação de serviços."
                    ),
                    f"{number:064x}",
                    tenant.id,
                )
                document_id = pipeline.register(draft)
                batches.add(document_id, pipeline.prepare(b"Contrato de servicos.", "text/plain"))
            batches.flush()

    # Then each tenant's document, chunks and vectors carry that tenant, all ready
    assert report.ingested == 2
    for tenant in tenants:
        row = owner.execute(
            """
            SELECT d.status, count(c.id) AS chunks, count(e.id) AS vectors,
                   count(*) FILTER (WHERE c.tenant_id = d.tenant_id
                                      AND e.tenant_id = d.tenant_id) AS scoped
            FROM knowledge.documents AS d
            JOIN knowledge.chunks AS c ON c.document_id = d.id
            JOIN knowledge.embeddings AS e ON e.chunk_id = c.id
            WHERE d.tenant_id = %s
            GROUP BY d.id
            """,
            (tenant.id,),
        ).fetchone()
        assert row["status"] == "ready"
        assert row["chunks"] == row["vectors"] == row["scoped"] > 0


def _text_file(folder: Path, text: str) -> Path:
    folder.mkdir()
    path = folder / "contrato.txt"
    path.write_text(text)
    return path
