"""`scripts/dev_token.py --email`: a dev token for any account of the local platform (an invited
one, not only the seeded users), signed by the local key and accepted by the handlers."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest

from lambdas.shared.constants import TENANT_CLAIM
from scripts import dev_token
from scripts.devstack.aws_resources import LocalResources
from scripts.devstack.identities import UnknownAccount, find_account
from scripts.devstack.jwt_keys import LOCAL_AUDIENCE, SigningKey, local_issuer
from tests.integration.conftest import World
from tests.support.database import TestDatabase
from tests.support.handlers import call


def _invite(world: World, email: str, role: str = "member") -> dict[str, Any]:
    result = call(
        "POST",
        "/api/members/invitations",
        user=world.a.user("admin"),
        body={"email": email, "role": role},
    )
    assert result.status == 201, result.body
    member: dict[str, Any] = result.body["member"]
    return member


def _token(
    capsys: pytest.CaptureFixture[str], db: TestDatabase, key_dir: Path, *args: str
) -> tuple[int, str, str]:
    status = dev_token.main(
        [*args, "--database-url", db.owner_url, "--key-dir", str(key_dir), "--port", "8123"]
    )
    out, err = capsys.readouterr()
    return status, out.strip(), err


def test_an_invited_user_gets_a_token_the_handlers_accept(
    world: World,
    lambda_env: LocalResources,
    db: TestDatabase,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an account invited into tenant a (Cognito holds it; it is no seeded user)
    email = f"invitee-{uuid.uuid4().hex[:10]}@example.com"
    member = _invite(world, email)

    # When the developer asks for its token by e-mail (in another case, as people type it)
    status, token, err = _token(capsys, db, tmp_path, "--email", email.upper())

    # Then the token has the seeded users' shape, signed by the local key
    assert status == 0, err
    assert jwt.get_unverified_header(token)["kid"] == "local-dev-key"
    claims = SigningKey.load_or_create(tmp_path).verify(token, issuer=local_issuer(8123))
    assert claims["aud"] == LOCAL_AUDIENCE
    assert claims["email"] == email
    assert claims[TENANT_CLAIM] == str(world.a.id)
    assert claims["token_use"] == "id"
    # and its sub is the Cognito account's, so the handlers know the caller
    seen = call(
        "GET",
        f"/api/members/{member['user_id']}",
        claims={name: str(value) for name, value in claims.items()},
    )
    assert seen.status == 200, seen.body
    assert (seen.body["email"], seen.body["role"]) == (email, "member")


def test_the_tenant_claim_is_the_account_s_first_tenant(
    world: World, lambda_env: LocalResources, db: TestDatabase
) -> None:
    # Given an account invited by tenant a, then by tenant b
    email = f"twice-{uuid.uuid4().hex[:10]}@example.com"
    first = _invite(world, email)
    second = call(
        "POST",
        "/api/members/invitations",
        user=world.b.user("admin"),
        body={"email": email, "role": "viewer"},
    )
    assert second.status == 201, second.body

    account = find_account(db.owner_url, email)

    # Then its token names tenant a, as the Cognito attribute set by the first invitation does
    assert account.tenant_id == world.a.id
    assert account.email == email
    with db.owner() as conn:
        row = conn.execute(
            "SELECT cognito_sub FROM alquimista_platform.users WHERE id = %s",
            (first["user_id"],),
        ).fetchone()
    assert row is not None
    assert account.sub == row["cognito_sub"]


def test_an_account_without_a_membership_gets_no_tenant_claim(
    db: TestDatabase, owner: psycopg.Connection[Any]
) -> None:
    # Given an account the platform knows but no tenant has (e.g. its membership was removed)
    email = f"loner-{uuid.uuid4().hex[:10]}@example.com"
    owner.execute(
        "INSERT INTO alquimista_platform.users (cognito_sub, email) VALUES (%s, %s)",
        (uuid.uuid4(), email),
    )

    account = find_account(db.owner_url, email)
    key = SigningKey.generate()
    claims = key.verify(key.issue_for(account))

    assert account.tenant_id is None
    assert TENANT_CLAIM not in claims
    assert claims["email"] == email


def test_an_unknown_email_is_refused_with_its_address(
    db: TestDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _token(capsys, db, tmp_path, "--email", "nobody@nowhere.example.com")

    assert status == 1
    assert out == ""
    assert "'nobody@nowhere.example.com'" in err
    assert "POST /api/members/invitations" in err
    with pytest.raises(UnknownAccount, match="nobody@nowhere"):
        find_account(db.owner_url, "nobody@nowhere.example.com")


def test_email_and_a_seeded_user_are_exclusive(
    db: TestDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as both:
        _token(capsys, db, tmp_path, "--email", "a@b.example.com", "--tenant", "acme")
    with pytest.raises(SystemExit) as neither:
        _token(capsys, db, tmp_path, "--tenant", "acme")

    assert both.value.code == 2
    assert neither.value.code == 2
    assert "--email" in capsys.readouterr().err


def test_email_without_make_dev_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no `make dev` stack in the state folder
    monkeypatch.setenv("DEV_STATE_DIR", str(tmp_path / "state"))

    status = dev_token.main(["--email", "a@b.example.com", "--key-dir", str(tmp_path)])

    assert status == 2
    assert "start `make dev` first" in capsys.readouterr().err
