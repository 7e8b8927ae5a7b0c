from __future__ import annotations

import pytest

from scripts.devstack.identities import USERS, find_user
from scripts.devstack.jwt_keys import (
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    InvalidToken,
    SigningKey,
    local_issuer,
)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def test_a_dev_token_carries_the_seeded_identity(key: SigningKey) -> None:
    user = find_user("acme", "admin")

    claims = key.verify(key.issue_for(user))

    assert claims["sub"] == str(user.sub)
    assert claims["email"] == user.email
    assert claims["custom:tenant_id"] == str(user.tenant.id)
    assert claims["iss"] == LOCAL_ISSUER
    assert claims["aud"] == LOCAL_AUDIENCE


def test_an_expired_token_is_refused(key: SigningKey) -> None:
    token = key.issue({"sub": "s"}, ttl_s=-10)

    with pytest.raises(InvalidToken, match="expired"):
        key.verify(token)


@pytest.mark.parametrize(
    ("issuer", "audience"),
    [("https://evil.example.com", LOCAL_AUDIENCE), (LOCAL_ISSUER, "another-client")],
)
def test_a_token_for_another_issuer_or_audience_is_refused(
    key: SigningKey, issuer: str, audience: str
) -> None:
    token = key.issue({"sub": "s"}, issuer=issuer, audience=audience)

    with pytest.raises(InvalidToken):
        key.verify(token)


def test_a_token_signed_by_another_key_is_refused(key: SigningKey) -> None:
    forged = SigningKey.generate().issue({"sub": "s"})

    with pytest.raises(InvalidToken):
        key.verify(forged)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_garbage_is_refused(key: SigningKey, token: str) -> None:
    with pytest.raises(InvalidToken):
        key.verify(token)


def test_the_key_is_created_once_and_reloaded(tmp_path) -> None:
    first = SigningKey.load_or_create(tmp_path)
    token = first.issue({"sub": "s"})

    again = SigningKey.load_or_create(tmp_path)

    assert again.verify(token)["sub"] == "s"
    assert (tmp_path / "dev-jwt-key.pem").stat().st_mode & 0o077 == 0


def test_dev_identities_are_stable_and_distinct() -> None:
    subs = {user.sub for user in USERS}

    assert len(subs) == len(USERS)
    assert find_user("globex", "viewer").sub == find_user("globex", "viewer").sub
    with pytest.raises(LookupError):
        find_user("initech", "admin")


def test_a_key_made_for_another_port_names_that_port_as_issuer_and_refuses_others() -> None:
    key = SigningKey(SigningKey.generate().private_key, issuer=local_issuer(8123))
    other = SigningKey(key.private_key)  # the default gateway port's issuer

    token = key.issue({"sub": "s"})

    assert key.verify(token)["iss"] == "http://127.0.0.1:8123/local-cognito"
    with pytest.raises(InvalidToken):
        other.verify(token)
