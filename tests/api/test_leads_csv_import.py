"""A CSV import as an operator lives it in ``make dev``, over HTTP through the local gateway and
moto's server: ask for an upload ticket, POST the file to the presigned URL, and (the dev
poller turning the new object into the S3 event AWS would send) read the applied import with
its rejected row; the leads are the importing tenant's only."""

from __future__ import annotations

import time
from typing import Any

import httpx

from lambdas.leads import import_handler
from lambdas.shared.constants import resource_names
from scripts.devstack.ingestion_poller import IngestionPoller, notified_buckets
from tests.api.conftest import ApiClient, ApiWorld
from tests.support.events import lambda_context

CSV = (
    b"full_name,email,phone\n"
    b"Ana Souza,ana.csv@example.com,\n"
    b"Bruno Reis,,(11) 98765-4321\n"
    b"Sem Contato,,\n"
)


def _import(event: dict[str, Any]) -> object:
    return import_handler.lambda_handler(event, lambda_context("leads-import"))


def test_a_presigned_csv_upload_is_imported_by_the_dev_poller(
    api: ApiClient, world: ApiWorld
) -> None:
    (imports,) = [n for n in notified_buckets(resource_names("dev")) if n.label == "leads-import"]
    poller = IngestionPoller(imports.bucket, _import, prefix=imports.prefix, suffix=imports.suffix)
    admin = api.headers_for(world.a.user("admin"))

    # Given an upload ticket, and the file posted to it as a browser form would
    ticket = api.http.post("/api/leads/imports", json={"skip_invalid": True}, headers=admin)
    assert ticket.status_code == 201, ticket.text
    upload = ticket.json()
    posted = httpx.post(
        upload["url"], data=upload["fields"], files={"file": ("leads.csv", CSV, "text/csv")}
    )
    assert posted.status_code in {200, 204}, posted.text
    status_url = f"/api/leads/imports/{upload['import_id']}"
    assert api.http.get(status_url, headers=admin).json()["status"] == "awaiting_upload"

    # When the poller sees the object, and the operator waits for the import to finish
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        poller.poll_once()
        status = api.http.get(status_url, headers=admin).json()
        if status["status"] in {"completed", "rejected"}:
            break
        time.sleep(0.2)

    # Then the two good rows are a's leads and the report names the bad one
    assert status["status"] == "completed", status
    assert (status["imported_rows"], status["rejected_rows"]) == (2, 1)
    assert [row["line"] for row in status["report"]] == [4]
    names = {
        lead["full_name"] for lead in api.http.get("/api/leads", headers=admin).json()["items"]
    }
    assert {"Ana Souza", "Bruno Reis"} <= names
    other = api.http.get("/api/leads", headers=api.headers_for(world.b.user("admin"))).json()
    assert not {"Ana Souza", "Bruno Reis"} & {lead["full_name"] for lead in other["items"]}
