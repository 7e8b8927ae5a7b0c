"""The pure legal-basis decision of outreach: which rule refuses, or none."""

from __future__ import annotations

import uuid

import pytest

from lambdas.leads.outreach import legal_basis_refusal
from lambdas.leads.outreach_repository import OutreachTarget


def _target(**changes: object) -> OutreachTarget:
    values: dict[str, object] = {
        "lead_id": uuid.uuid4(),
        "email": "ana@example.com",
        "phone": None,
        "status": "new",
        "legal_basis": "consent",
        "consent_status": "granted",
        "consent_purposes": ("prospecting",),
    }
    values.update(changes)
    return OutreachTarget(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "purpose", "rule"),
    [
        ({}, "prospecting", None),
        ({}, "newsletter", "consent_purpose"),
        ({"consent_status": "withdrawn"}, "prospecting", "consent_withdrawn"),
        ({"consent_status": "denied"}, "prospecting", "consent_denied"),
        ({"consent_status": "unknown"}, "prospecting", "consent_missing"),
        ({"status": "opted_out"}, "prospecting", "opted_out"),
        ({"legal_basis": "legitimate_interest", "consent_status": "unknown"}, "follow_up", None),
        (
            {"legal_basis": "legitimate_interest", "consent_status": "unknown"},
            "newsletter",
            "legitimate_interest_purpose",
        ),
        (
            {"legal_basis": "legitimate_interest", "consent_status": "withdrawn"},
            "prospecting",
            "consent_withdrawn",
        ),
        ({"legal_basis": "contract"}, "prospecting", "legal_basis"),
    ],
)
def test_the_refusing_rule_is_named(
    changes: dict[str, object], purpose: str, rule: str | None
) -> None:
    refusal = legal_basis_refusal(_target(**changes), purpose)

    assert (refusal.rule if refusal else None) == rule
