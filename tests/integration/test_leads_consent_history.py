"""``GET /api/leads/{lead_id}/consents``: a lead's consent proof (LGPD Art. 8) as recorded,
oldest first, through the leads handler on the real PostgreSQL: who, when, channel, purposes,
text version and the IP digest; kept after erasure (without the digest); tenant-isolated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from lambdas.leads.suppression import ip_hmac
from lambdas.shared.runtime import reset_runtime
from tests.integration.conftest import World
from tests.support.leads_intake import SUPPRESSION_KEY, call, configure_intake

FORM = {
    "name": "Contato site",
    "fields": ["full_name", "email"],
    "required_fields": ["email"],
    "consent_text": "Autorizo o contato comercial da Empresa X.",
    "consent_text_version": "v3",
    "purposes": ["prospecting", "newsletter"],
}
FORM_IP = "198.51.100.7"


@pytest.fixture
def intake(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    configure_intake(monkeypatch)
    yield world
    reset_runtime()


Conn = psycopg.Connection[dict[str, Any]]


def _lead_from_form(world: World, owner: Conn) -> str:
    """A lead created by the person's own form submission (consent granted, from FORM_IP)."""
    form = call("POST", "/api/leads/forms", user=world.a.user("admin"), body=FORM)
    assert form.status == 201, form.body
    submitted = call(
        "POST",
        f"/api/leads/forms/{form.body['id']}/submissions",
        body={
            "fields": {"full_name": "Ana Souza", "email": "ana@example.com"},
            "consent": True,
            "consent_text_version": "v3",
        },
        source_ip=FORM_IP,
    )
    assert submitted.status == 201, submitted.body
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(world.a.id),))
    row = owner.execute(
        "SELECT lead_id FROM nigredo_leads.form_submissions WHERE id = %s",
        (submitted.body["submission_id"],),
    ).fetchone()
    assert row is not None
    return str(row["lead_id"])


def test_the_history_shows_each_consent_event_with_its_proof_oldest_first(
    intake: World, owner: Conn
) -> None:
    # Given a lead who consented on the form, then withdrew by e-mail, recorded by a member
    lead_id = _lead_from_form(intake, owner)
    member = intake.a.user("member")
    withdrawn = call(
        "POST",
        f"/api/leads/{lead_id}/consents",
        user=member,
        body={"action": "withdrawn", "channel": "email", "ip": "203.0.113.9"},
    )
    assert withdrawn.status == 201, withdrawn.body

    # When a viewer reads the history
    history = call("GET", f"/api/leads/{lead_id}/consents", user=intake.a.user("viewer"))

    # Then both events are there, in order, each with who, channel, purposes, version and IP
    assert history.status == 200, history.body
    assert history.body["lead_id"] == lead_id
    granted, withdrawal = history.body["items"]
    key = SUPPRESSION_KEY.encode()
    assert {k: granted[k] for k in ("action", "channel", "text_version", "recorded_by")} == {
        "action": "granted",
        "channel": "form",
        "text_version": "v3",
        "recorded_by": None,
    }
    assert sorted(granted["purposes"]) == ["newsletter", "prospecting"]
    assert granted["ip_hmac"] == ip_hmac(key, FORM_IP)
    assert (withdrawal["action"], withdrawal["channel"], withdrawal["purposes"]) == (
        "withdrawn",
        "email",
        [],
    )
    assert withdrawal["recorded_by"] == str(member.id)
    assert withdrawal["ip_hmac"] == ip_hmac(key, "203.0.113.9")
    assert granted["occurred_at"] <= withdrawal["occurred_at"]
    assert FORM_IP not in str(history.body)


def test_an_erased_lead_keeps_its_history_without_the_ip_digest(intake: World, owner: Conn) -> None:
    lead_id = _lead_from_form(intake, owner)
    erased = call(
        "POST",
        "/api/leads/dsr",
        user=intake.a.user("admin"),
        body={"lead_id": lead_id, "kind": "erasure"},
    )
    assert erased.status == 201, erased.body

    history = call("GET", f"/api/leads/{lead_id}/consents", user=intake.a.user("member"))

    assert history.status == 200, history.body
    (event,) = history.body["items"]
    assert (event["action"], event["text_version"], event["ip_hmac"]) == ("granted", "v3", None)


def test_an_unknown_or_another_tenants_lead_is_404(intake: World, owner: Conn) -> None:
    lead_id = _lead_from_form(intake, owner)

    foreign = call("GET", f"/api/leads/{lead_id}/consents", user=intake.b.user("admin"))
    unknown = call("GET", f"/api/leads/{uuid.uuid4()}/consents", user=intake.a.user("admin"))
    malformed = call("GET", "/api/leads/not-a-uuid/consents", user=intake.a.user("admin"))
    anonymous = call("GET", f"/api/leads/{lead_id}/consents")

    for result in (foreign, unknown):
        assert (result.status, result.body["error"]["code"]) == (404, "lead_not_found")
    assert "items" not in foreign.body
    assert str(intake.a.id) not in str(foreign.body)
    assert malformed.status == 422
    assert anonymous.status in (401, 403)
