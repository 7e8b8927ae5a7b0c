"""Outreach through the intake router on the real PostgreSQL and moto's SES: sent once per key,
refused with the rule that refused (consent withdrawn, suppression, policy), tenant-isolated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from psycopg.types.json import Jsonb

from lambdas.leads.lgpd_repository import ConsentRepository, SuppressionRepository
from lambdas.leads.suppression import lead_digests
from lambdas.shared.runtime import reset_runtime
from scripts.devstack.stack import reset_lambda_caches
from tests.integration.conftest import World
from tests.support.factories import TestTenant
from tests.support.leads_intake import SENDER, SUPPRESSION_KEY, call, configure_intake

MESSAGE = {"subject": "Proposta", "body": "Olá, podemos conversar?", "purpose": "prospecting"}


@pytest.fixture
def intake(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    configure_intake(monkeypatch)
    yield world
    reset_runtime()


def _sent() -> list[Any]:
    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def _scoped(owner: psycopg.Connection[Any], tenant: TestTenant) -> None:
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(tenant.id),))


def _lead(
    owner: psycopg.Connection[Any],
    tenant: TestTenant,
    *,
    basis: str = "consent",
    consent: str = "granted",
    purposes: tuple[str, ...] = ("prospecting",),
) -> uuid.UUID:
    _scoped(owner, tenant)
    email = f"lead-{uuid.uuid4().hex[:8]}@example.com"
    row = owner.execute(
        """
        INSERT INTO nigredo_leads.leads (
            tenant_id, full_name, email, email_normalized, legal_basis, consent_status,
            consent_purposes, consent_given_at, consent_withdrawn_at, metadata)
        VALUES (%s, 'Ana Lead', %s, %s, %s, %s, %s,
                CASE WHEN %s = 'granted' THEN now() END,
                CASE WHEN %s = 'withdrawn' THEN now() END, %s)
        RETURNING id
        """,
        (tenant.id, email, email, basis, consent, list(purposes), consent, consent, Jsonb({})),
    ).fetchone()
    owner.commit()
    assert row is not None
    return uuid.UUID(str(row["id"]))


def _outreach(tenant: TestTenant, lead_id: uuid.UUID, key: str, body: dict[str, Any] = MESSAGE):
    return call(
        "POST",
        f"/api/leads/{lead_id}/outreach",
        user=tenant.user("member"),
        body=body,
        headers={"Idempotency-Key": key},
    )


def test_outreach_is_sent_once_per_key_and_recorded_as_an_interaction(
    intake: World, owner: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a lead who consented to prospecting
    lead_id = _lead(owner, intake.a)

    # When the same outreach is posted again with one key: through the API's idempotency
    # records, then (those gone, e.g. expired) straight to the service
    first = _outreach(intake.a, lead_id, "k-1")
    cached = _outreach(intake.a, lead_id, "k-1")
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    reset_lambda_caches()
    replay = _outreach(intake.a, lead_id, "k-1")

    # Then one e-mail left, the replay says so, and the timeline and audit hold it
    assert first.status == 200, first.body
    assert cached.body == first.body
    assert replay.status == 200
    assert replay.body["replayed"] is True
    assert replay.body["provider_message_id"] == first.body["provider_message_id"]
    sent = _sent()
    assert len(sent) == 1
    assert sent[0].source == SENDER
    _scoped(owner, intake.a)
    interactions = owner.execute(
        "SELECT channel, direction, kind FROM nigredo_leads.interacoes WHERE lead_id = %s",
        (lead_id,),
    ).fetchall()
    assert interactions == [{"channel": "email", "direction": "outbound", "kind": "outreach"}]
    lead = owner.execute(
        "SELECT status, last_contacted_at FROM nigredo_leads.leads WHERE id = %s", (lead_id,)
    ).fetchone()
    assert lead is not None
    assert lead["status"] == "contacted"
    assert lead["last_contacted_at"] is not None
    audit = owner.execute(
        """
        SELECT metadata::text AS details FROM alquimista_platform.audit_logs
        WHERE tenant_id = %s AND action = 'lead.outreach_sent'
        """,
        (intake.a.id,),
    ).fetchall()
    assert len(audit) == 1
    assert "example.com" not in audit[0]["details"]
    assert "Proposta" not in audit[0]["details"]


def test_withdrawn_consent_refuses_outreach_naming_the_rule(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    lead_id = _lead(owner, intake.a)
    _scoped(owner, intake.a)
    ConsentRepository(owner, intake.a.id).record(
        lead_id,
        action="withdrawn",
        channel="email",
        purposes=[],
        text_version=None,
        ip_hmac=None,
        recorded_by=None,
    )
    owner.commit()

    refused = _outreach(intake.a, lead_id, "k-2")

    assert refused.status == 403
    assert refused.body["error"]["code"] == "outreach_not_permitted"
    assert refused.body["error"]["details"][0]["rule"] == "consent_withdrawn"
    assert _sent() == []


@pytest.mark.parametrize(
    ("basis", "consent", "purpose", "rule"),
    [
        ("consent", "unknown", "prospecting", "consent_missing"),
        ("consent", "granted", "newsletter", "consent_purpose"),
        ("legitimate_interest", "unknown", "newsletter", "legitimate_interest_purpose"),
    ],
)
def test_a_legal_basis_that_does_not_cover_the_purpose_refuses(
    intake: World, owner: psycopg.Connection[Any], basis: str, consent: str, purpose: str, rule: str
) -> None:
    lead_id = _lead(owner, intake.a, basis=basis, consent=consent)

    refused = _outreach(intake.a, lead_id, "k-3", {**MESSAGE, "purpose": purpose})

    assert refused.status == 403
    assert refused.body["error"]["details"][0]["rule"] == rule
    assert _sent() == []


def test_legitimate_interest_allows_prospecting_without_consent(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    lead_id = _lead(owner, intake.a, basis="legitimate_interest", consent="unknown", purposes=())

    assert _outreach(intake.a, lead_id, "k-4").status == 200
    assert len(_sent()) == 1


def test_a_suppressed_lead_is_never_contacted(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    lead_id = _lead(owner, intake.a)
    _scoped(owner, intake.a)
    email = owner.execute(
        "SELECT email_normalized FROM nigredo_leads.leads WHERE id = %s", (lead_id,)
    ).fetchone()
    assert email is not None
    digests = lead_digests(SUPPRESSION_KEY.encode(), email=email["email_normalized"], phone=None)
    SuppressionRepository(owner, intake.a.id).add(digests, reason="opt_out", added_by=None)
    owner.commit()

    refused = _outreach(intake.a, lead_id, "k-5")

    assert refused.status == 403
    assert refused.body["error"]["code"] == "lead_suppressed"
    assert refused.body["error"]["details"][0]["rule"] == "suppression_list"
    assert _sent() == []


def test_a_blocking_policy_refuses_outreach_naming_the_policy_rule(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    lead_id = _lead(owner, intake.a)
    _scoped(owner, intake.a)
    rule = owner.execute(
        """
        INSERT INTO alquimista_platform.policy_rules (tenant_id, version, name, effect, matcher)
        VALUES (%s, 1, 'no outreach', 'block', %s) RETURNING rule_id
        """,
        (intake.a.id, Jsonb({"subject_kinds": ["lead.outreach"]})),
    ).fetchone()
    owner.commit()
    assert rule is not None

    refused = _outreach(intake.a, lead_id, "k-6")

    assert refused.status == 403
    assert refused.body["error"]["code"] == "policy_blocked"
    assert refused.body["error"]["details"][0]["rule_id"] == str(rule["rule_id"])
    assert _sent() == []


def test_an_approval_rule_holds_outreach_until_approved(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    lead_id = _lead(owner, intake.a)
    _scoped(owner, intake.a)
    owner.execute(
        """
        INSERT INTO alquimista_platform.policy_rules (
            tenant_id, version, name, effect, matcher, required_approvals)
        VALUES (%s, 1, 'review outreach', 'require_approval', %s, 1)
        """,
        (intake.a.id, Jsonb({"subject_kinds": ["lead.outreach"]})),
    )
    owner.commit()

    pending = _outreach(intake.a, lead_id, "k-7")

    assert pending.status == 409
    assert pending.body["error"]["code"] == "approval_pending"
    assert pending.body["error"]["details"][0]["rule"] == "approval_required"
    assert _sent() == []


def test_another_tenants_lead_is_not_found(intake: World, owner: psycopg.Connection[Any]) -> None:
    lead_id = _lead(owner, intake.b)

    refused = _outreach(intake.a, lead_id, "k-8")

    assert refused.status == 404
    assert _sent() == []


def test_outreach_needs_an_idempotency_key_and_a_valid_body(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    lead_id = _lead(owner, intake.a)

    keyless = call(
        "POST", f"/api/leads/{lead_id}/outreach", user=intake.a.user("member"), body=MESSAGE
    )
    invalid = _outreach(intake.a, lead_id, "k-9", {"subject": "", "body": "x", "purpose": "P!"})
    viewer = call(
        "POST",
        f"/api/leads/{lead_id}/outreach",
        user=intake.a.user("viewer"),
        body=MESSAGE,
        headers={"Idempotency-Key": "k-10"},
    )

    assert keyless.status == 400
    assert invalid.status == 422
    assert viewer.status == 403
    assert _sent() == []
