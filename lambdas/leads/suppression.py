"""Keyed digests of personal identifiers (pure; no I/O).

The suppression list and the consent history keep HMAC-SHA256 digests, never the value: with
the tenant-independent secret key (Secrets Manager) a value presented again can be matched,
and without it the digest reveals nothing. Each kind is domain-separated, so an e-mail and a
phone (or an IP) with the same text never share a digest.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Literal

from lambdas.leads.normalize import normalize_email, normalize_phone

IdentifierKind = Literal["email", "phone"]

MIN_KEY_BYTES = 32


def _digest(key: bytes, kind: str, value: str) -> str:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError("the HMAC key must be at least 32 bytes")
    return hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


def identifier_hmac(key: bytes, kind: IdentifierKind, value: str) -> str:
    """The digest of ``value`` after normalisation (so '+55 11 91234-5678' and '11912345678'
    match)."""
    normalized = normalize_email(value) if kind == "email" else normalize_phone(value)
    return _digest(key, kind, normalized)


def ip_hmac(key: bytes, ip: str) -> str:
    """The digest of an IP address in its canonical form (ValueError if it is not one)."""
    return _digest(key, "ip", ipaddress.ip_address(ip.strip()).compressed)


def lead_digests(key: bytes, *, email: str | None, phone: str | None) -> list[tuple[str, str]]:
    """(kind, digest) of each normalised identifier a lead has, for suppression checks."""
    found: list[tuple[str, str]] = []
    if email:
        found.append(("email", _digest(key, "email", email)))
    if phone:
        found.append(("phone", _digest(key, "phone", phone)))
    return found
