"""The chat flow as a client lives it, over HTTP through the local gateway and moto's server:
ask for a presigned upload, POST a Portuguese PDF to it, wait (the dev ingestion poller turns
the new object into an S3 event) until the document is ready, ask about it and get an answer
citing its chunks; another tenant asking the same gets none of them."""

from __future__ import annotations

import time
from typing import Any

import httpx

from lambdas.chat import ingest_handler
from lambdas.shared.constants import resource_names
from scripts.devstack.ingestion_poller import IngestionPoller
from scripts.devstack.llm_server import RunningLlmServer
from tests.api.conftest import ApiClient, ApiWorld
from tests.support.chat import portuguese_pdf
from tests.support.events import lambda_context

REFUND = "O reembolso é concedido em até trinta dias após a compra do produto."


def _ingest(event: dict[str, Any]) -> object:
    return ingest_handler.lambda_handler(event, lambda_context("chat-ingest"))


def _ask(api: ApiClient, headers: dict[str, str], question: str) -> dict[str, Any]:
    session = api.http.post("/api/chat/sessions", json={}, headers=headers)
    assert session.status_code == 201, session.text
    asked = api.http.post(
        f"/api/chat/sessions/{session.json()['id']}/messages",
        json={"content": question},
        headers=headers,
    )
    assert asked.status_code == 201, asked.text
    body: dict[str, Any] = asked.json()
    return body


def test_an_uploaded_pdf_is_ingested_and_cited_only_for_its_tenant(
    api: ApiClient, world: ApiWorld, llm_server: RunningLlmServer
) -> None:
    acme = api.headers_for(world.a.user("member"))
    ingest_handler._gateway.cache_clear()
    poller = IngestionPoller(resource_names("dev").documents_bucket, _ingest)

    # Given a presigned upload, a PDF posted to it as a browser form would
    issued = api.http.post(
        "/api/chat/documents",
        json={"title": "Política de reembolso", "filename": "politica.pdf"},
        headers=acme,
    )
    assert issued.status_code == 201, issued.text
    upload = issued.json()["upload"]
    posted = httpx.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("politica.pdf", portuguese_pdf([REFUND]), "application/pdf")},
    )
    assert posted.status_code in {200, 204}, posted.text
    document_url = f"/api/chat/documents/{issued.json()['document_id']}"
    assert api.http.get(document_url, headers=acme).status_code == 404  # not ingested yet

    # When the poller sees the object, and the client waits for the document to be ready
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        poller.poll_once()
        document = api.http.get(document_url, headers=acme)
        status = document.json().get("status") if document.status_code == 200 else None
        if status in {"ready", "failed"}:
            break
        time.sleep(0.2)
    assert status == "ready", document.text
    assert document.json()["title"] == "Política de reembolso"

    # Then acme's question is answered from it, citing its chunk
    answer = _ask(api, acme, "Qual é o prazo de reembolso da compra?")["answer"]
    assert "trinta dias" in answer["content"]
    assert {c["document_id"] for c in answer["citations"]} == {issued.json()["document_id"]}

    # and globex, asking the same, gets nothing of acme's
    globex = api.headers_for(world.b.user("member"))
    other = _ask(api, globex, "Qual é o prazo de reembolso da compra?")["answer"]
    assert other["citations"] == []
    assert "trinta dias" not in other["content"]
    assert api.http.get(document_url, headers=globex).status_code == 404
