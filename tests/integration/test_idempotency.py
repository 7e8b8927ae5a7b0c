"""Idempotency-Key on POST routes, with Powertools' DynamoDB store (moto)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from lambdas.shared.errors import Conflict, TooManyRequests
from lambdas.shared.gate import ApprovalPending
from lambdas.shared.http import create_resolver, resolve
from tests.support.events import http_event, lambda_context

app = create_resolver()
calls: list[str] = []


class CreateOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str


@app.post("/orders")
def create_order(order: CreateOrder) -> dict[str, Any]:
    calls.append(order.item)
    if order.item == "explode":
        raise RuntimeError("transient failure")
    if order.item == "taken":
        raise Conflict("already exists")
    if order.item == "needs-approval" and calls.count(order.item) == 1:
        raise ApprovalPending("waiting for approval; retry with the same Idempotency-Key")
    if order.item == "busy" and calls.count(order.item) == 1:
        raise TooManyRequests("slow down", retry_after_s=1)
    return {"order": len(calls), "item": order.item}


@pytest.fixture(autouse=True)
def _reset(lambda_env) -> None:
    calls.clear()


def _post(
    body: dict[str, Any], key: str | None, sub: str = "user-1", tenant_claim: str | None = None
) -> dict[str, Any]:
    headers = {"idempotency-key": key} if key else {}
    claims = {"sub": sub} | ({"custom:tenant_id": tenant_claim} if tenant_claim else {})
    event = http_event("POST", "/orders", body=body, headers=headers, claims=claims)
    return resolve(app, event, lambda_context("orders"))


def test_a_replay_returns_the_first_response_without_running_twice() -> None:
    first = _post({"item": "book"}, "key-1")
    second = _post({"item": "book"}, "key-1")

    assert calls == ["book"]
    assert second["statusCode"] == first["statusCode"] == 200
    assert json.loads(second["body"]) == json.loads(first["body"])
    assert second["headers"]["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.get("headers", {})


def test_the_same_key_with_a_different_body_is_refused() -> None:
    _post({"item": "book"}, "key-2")

    refused = _post({"item": "lamp"}, "key-2")

    assert refused["statusCode"] == 422
    assert json.loads(refused["body"])["error"]["code"] == "idempotency_key_reused"
    assert calls == ["book"]


def test_without_a_key_every_request_runs() -> None:
    _post({"item": "book"}, None)
    _post({"item": "book"}, None)

    assert calls == ["book", "book"]


def test_keys_are_scoped_to_the_caller() -> None:
    _post({"item": "book"}, "shared-key", sub="alice")
    other = _post({"item": "book"}, "shared-key", sub="bob")

    assert calls == ["book", "book"]
    assert "Idempotent-Replayed" not in other.get("headers", {})


def test_keys_are_scoped_to_the_tenant_of_the_token_claim() -> None:
    _post({"item": "book"}, "claim-key", tenant_claim=str(uuid.uuid4()))
    other = _post({"item": "book"}, "claim-key", tenant_claim=str(uuid.uuid4()))

    assert calls == ["book", "book"]
    assert "Idempotent-Replayed" not in other.get("headers", {})


def test_a_server_error_is_not_recorded_so_a_retry_runs_again() -> None:
    first = _post({"item": "explode"}, "key-3")
    second = _post({"item": "explode"}, "key-3")

    assert first["statusCode"] == second["statusCode"] == 500
    assert calls == ["explode", "explode"]


def test_a_client_error_is_replayed_like_any_other_response() -> None:
    first = _post({"item": "taken"}, "key-4")
    second = _post({"item": "taken"}, "key-4")

    assert first["statusCode"] == second["statusCode"] == 409
    assert calls == ["taken"]


@pytest.mark.parametrize(("item", "status"), [("needs-approval", 409), ("busy", 429)])
def test_a_not_now_answer_is_not_recorded_so_the_retry_with_the_key_runs(
    item: str, status: int
) -> None:
    """An approval still pending or a rate limit did nothing: the retry the error asks for,
    with the same key, runs (and is then recorded like any response)."""
    first = _post({"item": item}, f"key-{item}")
    second = _post({"item": item}, f"key-{item}")
    third = _post({"item": item}, f"key-{item}")

    assert first["statusCode"] == status
    assert "Idempotent-Replayed" not in first.get("headers", {})
    assert second["statusCode"] == 200
    assert "Idempotent-Replayed" not in second.get("headers", {})
    assert third["headers"]["Idempotent-Replayed"] == "true"
    assert json.loads(third["body"]) == json.loads(second["body"])
    assert calls == [item, item]


def test_an_overlong_key_is_refused() -> None:
    refused = _post({"item": "book"}, "k" * 256)

    assert refused["statusCode"] == 422
    assert calls == []


def test_the_same_logical_request_in_every_accepted_spelling_is_applied_once(world, owner) -> None:
    # Given a trial, and a member whose token names tenant a
    from scripts.devstack.seed_catalog import find_subnucleo  # noqa: PLC0415
    from tests.support.factories import create_trial  # noqa: PLC0415
    from tests.support.handlers import call  # noqa: PLC0415

    trial_id = create_trial(owner, world.a, subnucleo_id=find_subnucleo("marketing").id)
    member = world.a.user("member")
    tenant = str(world.a.id)
    spellings = [
        ({}, str(trial_id)),
        ({"x-tenant-id": tenant}, str(trial_id)),
        ({"x-tenant-id": tenant.upper()}, str(trial_id)),
        ({"x-tenant-id": tenant}, str(trial_id).upper()),
    ]

    # When the client retries the same use of the trial, spelt each way, with one key
    results = [
        call(
            "POST",
            f"/api/billing/trials/{path_id}/usage",
            user=member,
            headers={"idempotency-key": "use-1", **headers},
        )
        for headers, path_id in spellings
    ]

    # Then it was counted once and every retry is the first response replayed
    assert [r.status for r in results] == [200] * len(spellings)
    assert {r.body["usage_count"] for r in results} == {1}
    assert [r.headers.get("Idempotent-Replayed") for r in results] == [None] + ["true"] * 3
    row = owner.execute("SELECT usage_count FROM public.trials WHERE id = %s", (trial_id,))
    assert row.fetchone()["usage_count"] == 1


@pytest.mark.parametrize(
    "spelling",
    ["{%s}", "urn:uuid:%s", "%s--"],
)
def test_other_spellings_of_the_tenant_are_refused_not_applied(world, owner, spelling) -> None:
    from scripts.devstack.seed_catalog import find_subnucleo  # noqa: PLC0415
    from tests.support.factories import create_trial  # noqa: PLC0415
    from tests.support.handlers import call  # noqa: PLC0415

    trial_id = create_trial(owner, world.a, subnucleo_id=find_subnucleo("marketing").id)

    result = call(
        "POST",
        f"/api/billing/trials/{trial_id}/usage",
        user=world.a.user("member"),
        headers={"idempotency-key": "use-2", "x-tenant-id": spelling % world.a.id},
    )

    assert result.status == 422
    row = owner.execute("SELECT usage_count FROM public.trials WHERE id = %s", (trial_id,))
    assert row.fetchone()["usage_count"] == 0
