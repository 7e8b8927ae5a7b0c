"""Public capture forms through the intake router on the real PostgreSQL: definition (admin),
submission with consent proof creating or enriching a lead, validation, the per-IP rate limit,
suppression, tenant isolation; and the provider webhook log writer."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from lambdas.leads.forms_repository import WebhookLogRepository
from lambdas.leads.lgpd_repository import SuppressionRepository
from lambdas.leads.suppression import lead_digests
from lambdas.shared.runtime import reset_runtime
from tests.integration.conftest import World
from tests.support.factories import TestTenant
from tests.support.leads_intake import SUPPRESSION_KEY, call, configure_intake

FORM = {
    "name": "Contato site",
    "fields": ["full_name", "email", "company"],
    "required_fields": ["email"],
    "consent_text": "Autorizo o contato comercial da Empresa X.",
    "consent_text_version": "v3",
    "purposes": ["prospecting"],
    "max_per_ip_per_hour": 3,
}


@pytest.fixture
def intake(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    configure_intake(monkeypatch)
    yield world
    reset_runtime()


def _scoped(owner: psycopg.Connection[Any], tenant: TestTenant) -> None:
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(tenant.id),))


def _form(tenant: TestTenant, **changes: Any) -> str:
    created = call("POST", "/api/leads/forms", user=tenant.user("admin"), body=FORM | changes)
    assert created.status == 201, created.body
    return str(created.body["id"])


def _submit(form_id: str, body: dict[str, Any], *, ip: str = "198.51.100.7"):
    return call(
        "POST",
        f"/api/leads/forms/{form_id}/submissions",
        body=body,
        source_ip=ip,
        headers={"User-Agent": "test-browser"},
    )


def _submission(email: str = "ana@example.com", **fields: str) -> dict[str, Any]:
    return {
        "fields": {"full_name": "Ana Souza", "email": email, **fields},
        "consent": True,
        "consent_text_version": "v3",
    }


def test_a_submission_with_consent_creates_a_lead_with_its_consent_proof(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    form_id = _form(intake.a)

    submitted = _submit(form_id, _submission(" Ana@Example.com "))

    assert submitted.status == 201, submitted.body
    _scoped(owner, intake.a)
    lead = owner.execute(
        """
        SELECT id, source, legal_basis, consent_status, consent_purposes, consent_text_version
        FROM nigredo_leads.leads WHERE email_normalized = 'ana@example.com'
        """
    ).fetchone()
    assert lead is not None
    assert (lead["source"], lead["legal_basis"], lead["consent_status"]) == (
        "form",
        "consent",
        "granted",
    )
    assert (lead["consent_purposes"], lead["consent_text_version"]) == (["prospecting"], "v3")
    event = owner.execute(
        """
        SELECT channel, text_version, ip_hmac FROM nigredo_leads.consent_events
        WHERE lead_id = %s
        """,
        (lead["id"],),
    ).fetchone()
    assert event is not None
    assert (event["channel"], event["text_version"]) == ("form", "v3")
    assert event["ip_hmac"] is not None
    assert "198.51.100.7" not in event["ip_hmac"]
    row = owner.execute(
        """
        SELECT form_id, lead_id, consent_given, consent_text, consent_text_version, source_ip
        FROM nigredo_leads.form_submissions WHERE id = %s
        """,
        (submitted.body["submission_id"],),
    ).fetchone()
    assert row is not None
    assert str(row["form_id"]) == form_id
    assert row["lead_id"] == lead["id"]
    assert row["consent_given"] is True
    assert (row["consent_text"], row["consent_text_version"]) == (FORM["consent_text"], "v3")
    assert row["source_ip"] is None
    audited = owner.execute(
        """
        SELECT metadata::text AS details FROM alquimista_platform.audit_logs
        WHERE tenant_id = %s AND action = 'form_submission.received'
        """,
        (intake.a.id,),
    ).fetchall()
    assert len(audited) == 1
    assert "example.com" not in audited[0]["details"]


def test_a_second_submission_enriches_the_same_lead(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    form_id = _form(intake.a)

    assert _submit(form_id, _submission()).status == 201
    assert _submit(form_id, _submission(company="Empresa Y")).status == 201

    _scoped(owner, intake.a)
    leads = owner.execute(
        "SELECT company FROM nigredo_leads.leads WHERE email_normalized = 'ana@example.com'"
    ).fetchall()
    assert leads == [{"company": "Empresa Y"}]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**_submission(), "consent": False}, "consent_required"),
        ({**_submission(), "consent_text_version": "v2"}, "consent_required"),
        (_submission("not-an-email"), "invalid_submission"),
        (_submission(phone="11912345678"), "invalid_submission"),
        ({"fields": {"full_name": "Sem e-mail"}, "consent": True, "consent_text_version": "v3"},
         "invalid_submission"),
        ({"fields": {"email": "a@b.com"}, "consent": True}, "validation_error"),
    ],
)  # fmt: skip
def test_an_invalid_submission_is_refused_and_creates_nothing(
    intake: World, owner: psycopg.Connection[Any], body: dict[str, Any], code: str
) -> None:
    form_id = _form(intake.a)

    refused = _submit(form_id, body)

    assert refused.status == 422, refused.body
    assert refused.body["error"]["code"] == code
    _scoped(owner, intake.a)
    assert owner.execute("SELECT count(*) AS n FROM nigredo_leads.leads").fetchone() == {"n": 0}


def test_an_unknown_form_is_not_found(intake: World) -> None:
    missing = _submit(str(uuid.uuid4()), _submission())
    malformed = _submit("not-a-uuid", _submission())

    assert missing.status == 404
    assert missing.body["error"]["code"] == "form_not_found"
    assert malformed.status == 422


def test_submissions_are_rate_limited_per_ip_and_form(intake: World) -> None:
    form_id = _form(intake.a)

    statuses = [_submit(form_id, _submission(f"p{i}@example.com")).status for i in range(4)]
    other_ip = _submit(form_id, _submission("q@example.com"), ip="198.51.100.8")

    assert statuses == [201, 201, 201, 429]
    assert other_ip.status == 201


def test_a_suppressed_person_submitting_creates_no_lead(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    form_id = _form(intake.a)
    _scoped(owner, intake.a)
    digests = lead_digests(SUPPRESSION_KEY.encode(), email="ana@example.com", phone=None)
    SuppressionRepository(owner, intake.a.id).add(digests, reason="opt_out", added_by=None)
    owner.commit()

    submitted = _submit(form_id, _submission())

    assert submitted.status == 201
    _scoped(owner, intake.a)
    assert owner.execute("SELECT count(*) AS n FROM nigredo_leads.leads").fetchone() == {"n": 0}
    row = owner.execute(
        "SELECT status, payload, lead_id FROM nigredo_leads.form_submissions"
    ).fetchone()
    assert row == {"status": "rejected", "payload": {}, "lead_id": None}


def _intake_rows(owner: psycopg.Connection[Any], tenant: TestTenant) -> tuple[int, int, int]:
    """(leads, form submissions, consent events) that ``tenant`` holds."""
    row = owner.execute(
        """
        SELECT (SELECT count(*) FROM nigredo_leads.leads WHERE tenant_id = %(t)s) AS leads,
               (SELECT count(*) FROM nigredo_leads.form_submissions
                WHERE tenant_id = %(t)s) AS submissions,
               (SELECT count(*) FROM nigredo_leads.consent_events
                WHERE tenant_id = %(t)s) AS consents
        """,
        {"t": tenant.id},
    ).fetchone()
    assert row is not None
    return row["leads"], row["submissions"], row["consents"]


def test_a_submission_lands_in_the_forms_tenant_whoever_posts_it(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    # Given one form per tenant
    a_form, b_form = _form(intake.a), _form(intake.b)

    # When each form gets a submission carrying the other tenant's token (a public route
    # reads none)
    to_a = call(
        "POST",
        f"/api/leads/forms/{a_form}/submissions",
        user=intake.b.user("admin"),
        body=_submission("para.a@example.com"),
    )
    assert to_a.status == 201, to_a.body
    after_a = (_intake_rows(owner, intake.a), _intake_rows(owner, intake.b))
    to_b = call(
        "POST",
        f"/api/leads/forms/{b_form}/submissions",
        user=intake.a.user("admin"),
        body=_submission("para.b@example.com"),
    )
    assert to_b.status == 201, to_b.body

    # Then the first created a's lead only, the second b's only
    assert after_a == ((1, 1, 1), (0, 0, 0))
    assert (_intake_rows(owner, intake.a), _intake_rows(owner, intake.b)) == (
        (1, 1, 1),
        (1, 1, 1),
    )
    emails = owner.execute(
        "SELECT email_normalized FROM nigredo_leads.leads WHERE tenant_id = %s", (intake.b.id,)
    ).fetchall()
    assert emails == [{"email_normalized": "para.b@example.com"}]


def test_forms_are_an_admins_and_another_tenant_cannot_read_them(intake: World) -> None:
    form_id = _form(intake.a)

    member = call("POST", "/api/leads/forms", user=intake.a.user("member"), body=FORM)
    duplicate = call("POST", "/api/leads/forms", user=intake.a.user("admin"), body=FORM)
    own = call("GET", f"/api/leads/forms/{form_id}", user=intake.a.user("viewer"))
    foreign = call("GET", f"/api/leads/forms/{form_id}", user=intake.b.user("admin"))
    invalid = call(
        "POST",
        "/api/leads/forms",
        user=intake.a.user("admin"),
        body=FORM | {"fields": ["full_name"], "required_fields": []},
    )

    assert member.status == 403
    assert duplicate.status == 409
    assert own.status == 200
    assert own.body["consent_text_version"] == "v3"
    assert foreign.status == 404
    assert invalid.status == 422


def test_the_webhook_log_keeps_the_payload_hash_and_outcome_never_the_payload(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    _scoped(owner, intake.a)
    logs = WebhookLogRepository(owner, intake.a.id)
    payload = b'{"email": "ana@example.com"}'
    digest = hashlib.sha256(payload).hexdigest()

    valid = logs.record(
        source="typeform",
        event_type="form_response",
        external_id="evt-1",
        signature_valid=True,
        payload_sha256=digest,
        status="processed",
        response_status=201,
    )
    replay = logs.record(
        source="typeform",
        event_type="form_response",
        external_id="evt-1",
        signature_valid=True,
        payload_sha256=digest,
        status="processed",
        response_status=201,
    )
    forged = logs.record(
        source="typeform",
        event_type="form_response",
        external_id=None,
        signature_valid=False,
        payload_sha256=digest,
        status="failed",
        response_status=401,
        error="invalid signature",
    )

    assert valid is not None
    assert replay is None
    assert forged is not None
    rows = owner.execute(
        """
        SELECT signature_valid, payload, payload_sha256, status, processed_at IS NOT NULL AS done
        FROM nigredo_leads.webhook_logs ORDER BY signature_valid DESC
        """
    ).fetchall()
    assert rows == [
        {"signature_valid": True, "payload": {}, "payload_sha256": digest,
         "status": "processed", "done": True},
        {"signature_valid": False, "payload": {}, "payload_sha256": digest,
         "status": "failed", "done": True},
    ]  # fmt: skip
