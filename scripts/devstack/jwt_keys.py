"""The local stand-in for Cognito: an RSA key that signs dev tokens, and the checks the HTTP
API JWT authorizer makes (signature, issuer, audience, expiry)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lambdas.shared.constants import TENANT_CLAIM
from scripts.devstack.identities import TokenSubject


def local_issuer(port: int = 8000) -> str:
    """The dev tokens' issuer: the local gateway's own address, as Cognito's is its pool URL."""
    return f"http://127.0.0.1:{port}/local-cognito"


LOCAL_ISSUER: Final = local_issuer()
LOCAL_AUDIENCE: Final = "alquimista-local-client"
KEY_FILE: Final = "dev-jwt-key.pem"
ALGORITHM: Final = "RS256"


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or meant for someone else."""


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str = "local-dev-key"
    issuer: str = LOCAL_ISSUER

    @classmethod
    def load_or_create(cls, directory: Path, *, issuer: str = LOCAL_ISSUER) -> SigningKey:
        path = directory / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise TypeError(f"{path} does not hold an RSA private key")
            return cls(key, issuer=issuer)
        directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.write_bytes(pem)
        path.chmod(0o600)
        return cls(key, issuer=issuer)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def issue(
        self,
        claims: dict[str, Any],
        *,
        ttl_s: int = 3600,
        issuer: str | None = None,
        audience: str = LOCAL_AUDIENCE,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer or self.issuer,
            "aud": audience,
            "iat": now,
            "auth_time": now,
            "exp": now + ttl_s,
            "jti": str(uuid.uuid4()),
            "token_use": "id",
            **claims,
        }
        return jwt.encode(payload, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def issue_for(self, user: TokenSubject, *, ttl_s: int = 3600) -> str:
        """An ID token shaped like Cognito's for a seeded dev user or another local account
        (no ``custom:tenant_id`` claim when the account has no tenant, as Cognito omits an
        unset attribute)."""
        claims: dict[str, Any] = {
            "sub": str(user.sub),
            "email": user.email,
            "email_verified": True,
            "cognito:username": user.email,
        }
        if user.tenant_id is not None:
            claims[TENANT_CLAIM] = str(user.tenant_id)
        return self.issue(claims, ttl_s=ttl_s)

    def verify(
        self, token: str, *, issuer: str | None = None, audience: str = LOCAL_AUDIENCE
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.private_key.public_key(),
                algorithms=[ALGORITHM],
                issuer=issuer or self.issuer,
                audience=audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        return claims
