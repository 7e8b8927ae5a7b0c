from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from lambdas.shared.auth import (
    MembershipGrant,
    MembershipRequired,
    authorize,
    identity_from_claims,
    requested_tenant,
)
from lambdas.shared.errors import Forbidden, Unauthorized, ValidationFailed


@dataclass
class FakeGrants:
    """Stands in for the membership lookup the request scope sends with BEGIN."""

    grants: dict[tuple[uuid.UUID, uuid.UUID], MembershipGrant] = field(default_factory=dict)
    lookups: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)

    def __call__(self, sub: uuid.UUID, tenant_id: uuid.UUID) -> MembershipGrant | None:
        self.lookups.append((sub, tenant_id))
        return self.grants.get((sub, tenant_id))


def _event(claims: dict[str, str] | None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"requestId": "r-1"}
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims}}
    return {"headers": headers or {}, "requestContext": context}


@pytest.fixture
def setup():
    sub, tenant, user_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    lookup = FakeGrants()
    lookup.grants[(sub, tenant)] = MembershipGrant(user_id, "viewer", frozenset({"plans:read"}))
    return sub, tenant, user_id, lookup


def test_a_member_with_the_permission_becomes_the_principal(setup) -> None:
    sub, tenant, user_id, lookup = setup
    claims = {"sub": str(sub), "email": "v@example.com", "custom:tenant_id": str(tenant)}

    principal = authorize(_event(claims), "plans:read", lookup)

    assert principal.user_id == user_id
    assert principal.tenant_id == tenant
    assert principal.role == "viewer"
    assert principal.email == "v@example.com"
    # the membership was looked up in the requested tenant
    assert lookup.lookups == [(sub, tenant)]


def test_a_missing_permission_is_forbidden(setup) -> None:
    sub, tenant, _, lookup = setup
    claims = {"sub": str(sub), "custom:tenant_id": str(tenant)}

    with pytest.raises(Forbidden, match="billing:manage"):
        authorize(_event(claims), "billing:manage", lookup)


def test_a_caller_without_membership_is_forbidden(setup) -> None:
    sub, _, _, lookup = setup
    claims = {"sub": str(sub), "custom:tenant_id": str(uuid.uuid4())}

    with pytest.raises(Forbidden, match="not an active member"):
        authorize(_event(claims), "plans:read", lookup)


def test_no_claims_is_unauthorized_and_never_reaches_the_database(setup) -> None:
    _, _, _, lookup = setup

    with pytest.raises(Unauthorized):
        authorize(_event(None), "plans:read", lookup)
    assert lookup.lookups == []


def test_the_header_wins_over_the_claim() -> None:
    claimed, chosen = uuid.uuid4(), uuid.uuid4()

    tenant = requested_tenant({"custom:tenant_id": str(claimed)}, {"x-tenant-id": str(chosen)})

    assert tenant == chosen


@pytest.mark.parametrize(
    ("claims", "headers", "error"),
    [
        ({"custom:tenant_id": "nope"}, {}, Unauthorized),
        ({}, {"x-tenant-id": "nope"}, ValidationFailed),
        ({}, {}, Forbidden),
    ],
)
def test_a_bad_or_missing_tenant_is_refused(claims, headers, error) -> None:
    with pytest.raises(error):
        requested_tenant(claims, headers)


@pytest.mark.parametrize("claims", [None, {}, {"sub": ""}, {"sub": "user-1"}, {"sub": 5}])
def test_an_identity_needs_a_uuid_subject(claims) -> None:
    with pytest.raises(Unauthorized):
        identity_from_claims(claims)


_TENANT = uuid.UUID("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b")


@pytest.mark.parametrize(
    "spelling",
    [
        "{6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b}",
        "urn:uuid:6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        "6f1c2b3a4d5e4f608a7b9c0d1e2f3a4b",
        "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b--",
        "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4",
        "\uff16f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",  # a full-width digit six
    ],
)
def test_only_the_hyphenated_uuid_form_is_accepted_in_x_tenant_id(spelling: str) -> None:
    with pytest.raises(ValidationFailed):
        requested_tenant({}, {"x-tenant-id": spelling})


@pytest.mark.parametrize("spelling", [str(_TENANT), str(_TENANT).upper(), f" {_TENANT} "])
def test_accepted_spellings_of_x_tenant_id_name_one_tenant(spelling: str) -> None:
    assert requested_tenant({}, {"x-tenant-id": spelling}) == _TENANT


def test_an_account_the_platform_never_saw_is_told_to_get_invited(setup) -> None:
    sub, tenant, _, lookup = setup
    unknown = uuid.uuid4()
    asked: list[uuid.UUID] = []

    def account_known(candidate: uuid.UUID) -> bool:
        asked.append(candidate)
        return bool(candidate == sub)

    for claims in ({"sub": str(unknown)}, {"sub": str(unknown), "custom:tenant_id": str(tenant)}):
        with pytest.raises(MembershipRequired, match="invite") as refused:
            authorize(_event(claims), "plans:read", lookup, account_known)
        assert refused.value.code == "membership_required"
    assert asked == [unknown, unknown]


def test_a_known_account_without_a_tenant_or_membership_stays_forbidden(setup) -> None:
    sub, _, _, lookup = setup

    with pytest.raises(Forbidden) as no_tenant:
        authorize(_event({"sub": str(sub)}), "plans:read", lookup, lambda _: True)
    other = {"sub": str(sub), "custom:tenant_id": str(uuid.uuid4())}
    with pytest.raises(Forbidden) as not_member:
        authorize(_event(other), "plans:read", lookup, lambda _: True)

    assert (no_tenant.value.code, not_member.value.code) == ("forbidden", "forbidden")
