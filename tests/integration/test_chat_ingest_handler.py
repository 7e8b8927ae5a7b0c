"""The S3-event ingestion Lambda: an original uploaded under documents/<tenant>/... becomes a
ready document of that tenant, through moto's S3 and the offline provider."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from lambdas.chat import ingest_handler
from scripts.devstack.llm_server import RunningLlmServer, start_llm_server
from tests.support.chat import portuguese_pdf
from tests.support.events import lambda_context
from tests.support.factories import create_tenant

BUCKET = "alquimista-dev-documents"


@pytest.fixture
def llm(monkeypatch) -> Iterator[RunningLlmServer]:
    server = start_llm_server()
    monkeypatch.setenv("LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("LLM_API_KEY", server.api_key)
    ingest_handler._gateway.cache_clear()
    yield server
    ingest_handler._gateway.cache_clear()
    server.stop()


def _event(key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 1}},
            }
        ]
    }


def _upload(key: str, body: bytes, title: str | None = None) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    metadata = {"title": quote(title)} if title else {}
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata)


def test_an_uploaded_pdf_becomes_a_ready_document_of_its_tenant(lambda_env, owner, llm) -> None:
    tenant = create_tenant(owner)
    key = f"documents/{tenant.id}/{uuid.uuid4()}/politica+de+reembolso.pdf"
    _upload(
        key.replace("+", " "),
        portuguese_pdf(["O reembolso é concedido em até trinta dias após a compra."]),
        title="Política de reembolso",
    )

    result = ingest_handler.lambda_handler(_event(key), lambda_context("chat-ingest"))

    [outcome] = result["documents"]
    assert outcome["status"] == "ready", outcome
    row = owner.execute(
        "SELECT tenant_id, title, s3_key, status, chunk_count FROM knowledge.documents"
    ).fetchone()
    assert row["tenant_id"] == tenant.id
    assert row["title"] == "Política de reembolso"
    assert (row["status"], row["chunk_count"]) == ("ready", 1)
    assert llm.stats.embeddings == 1
    # its vector left out of the HNSW graph for the index_chat_embeddings job
    assert owner.execute("SELECT indexed FROM knowledge.embeddings").fetchall() == [
        {"indexed": False}
    ]

    # The same upload again is a duplicate, reported and skipped
    again = ingest_handler.lambda_handler(_event(key), lambda_context("chat-ingest"))
    assert again["documents"][0]["status"] == "duplicate"


@pytest.mark.parametrize(
    "key", ["elsewhere/x.txt", "documents/not-a-uuid/u/x.txt", "documents/{tenant}/u/x.xlsx"]
)
def test_objects_outside_the_layout_or_of_unknown_types_are_rejected(
    lambda_env, owner, llm, key
) -> None:
    tenant = create_tenant(owner)
    key = key.format(tenant=tenant.id)
    _upload(key, b"conteudo")
    result = ingest_handler.lambda_handler(_event(key), lambda_context("chat-ingest"))
    assert result["documents"][0]["status"] == "rejected"
    assert owner.execute("SELECT count(*) AS n FROM knowledge.documents").fetchone() == {"n": 0}
