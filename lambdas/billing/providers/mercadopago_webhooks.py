"""Mercado Pago webhooks: the documented ``x-signature`` (``ts=<ts>,v1=<hex>``), an
HMAC-SHA256 with the application's secret over the manifest
``id:<data.id>;request-id:<x-request-id>;ts:<ts>;`` (``data.id`` from the query string, lower
case; a part whose value is absent is left out of the manifest).

A notification carries only ids: ``{"id", "type", "action", "data": {"id"}, ...}``. The state
of the payment or subscription (``preapproval``) lives in the resource, which only a call to
Mercado Pago's API returns, and outbound calls are out of scope here. So a notification drives
no status change on its own: it is verified, deduplicated by its id, recorded, and tied to our
subscription when it names a preapproval we know (``provider_subscription_id``); a
reconciliation that fetches the resource is what would act on it (docs/api.md).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from pydantic import Field

from lambdas.billing.providers import InvalidSignature, ProviderEvent, WebhookDelivery
from lambdas.billing.providers._shape import ProviderObject, validate
from lambdas.shared.constants import WEBHOOK_TOLERANCE_S
from lambdas.shared.request_body import parse_json

SIGNATURE_HEADER: Final = "x-signature"
REQUEST_ID_HEADER: Final = "x-request-id"
DATA_ID_PARAM: Final = "data.id"
# the notification types that name a subscription (a preapproval) by its id
PREAPPROVAL_TYPES: Final = frozenset({"subscription_preapproval", "preapproval"})
HANDLED_TYPES: Final = PREAPPROVAL_TYPES | {"payment", "subscription_authorized_payment"}
# a timestamp longer than milliseconds since the epoch is no timestamp
_MAX_TS_DIGITS: Final = 13
_MS_THRESHOLD: Final = 10**11


class _Data(ProviderObject):
    id: str | int


class Notification(ProviderObject):
    id: str | int
    type: str = Field(min_length=1, max_length=100)
    action: str | None = Field(default=None, max_length=100)
    data: _Data


def manifest(*, data_id: str | None, request_id: str | None, ts: str) -> str:
    parts = [
        f"id:{data_id.lower()};" if data_id else "",
        f"request-id:{request_id};" if request_id else "",
        f"ts:{ts};",
    ]
    return "".join(parts)


def sign(secret: str, *, data_id: str | None, request_id: str | None, ts: str) -> str:
    """The ``x-signature`` header Mercado Pago sends for these values."""
    text = manifest(data_id=data_id, request_id=request_id, ts=ts)
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


def _signature_parts(header: str | None) -> tuple[str, str]:
    parts: dict[str, str] = {}
    for item in (header or "").split(","):
        key, _, value = item.partition("=")
        parts[key.strip()] = value.strip()
    ts, v1 = parts.get("ts", ""), parts.get("v1", "")
    if not ts or not v1:
        raise InvalidSignature("missing x-signature ts or v1")
    return ts, v1


def verify(delivery: WebhookDelivery, *, secret: str, now: float) -> None:
    ts, v1 = _signature_parts(delivery.headers.get(SIGNATURE_HEADER))
    # digits only and bounded before any arithmetic: a 300-digit "timestamp" is a forgery,
    # not an OverflowError
    if not (ts.isascii() and ts.isdigit()) or len(ts) > _MAX_TS_DIGITS:
        raise InvalidSignature("invalid x-signature timestamp")
    sent_at = int(ts) / 1000 if int(ts) >= _MS_THRESHOLD else int(ts)
    if abs(now - sent_at) > WEBHOOK_TOLERANCE_S:
        raise InvalidSignature("x-signature timestamp outside the tolerance")
    expected = sign(
        secret,
        data_id=delivery.query.get(DATA_ID_PARAM),
        request_id=delivery.headers.get(REQUEST_ID_HEADER),
        ts=ts,
    )
    if not hmac.compare_digest(expected.encode(), f"ts={ts},v1={v1}".encode()):
        raise InvalidSignature("x-signature does not match")


def read_event(delivery: WebhookDelivery, *, secret: str, now: float) -> ProviderEvent:
    verify(delivery, secret=secret, now=now)
    payload = parse_json(delivery.body)
    notification = validate(Notification, payload)
    action = (notification.action or "").rsplit(".", 1)[-1]
    event_type = f"{notification.type}.{action}" if action else notification.type
    preapproval = notification.type in PREAPPROVAL_TYPES
    handled = notification.type in HANDLED_TYPES
    return ProviderEvent(
        provider="mercadopago",
        event_id=str(notification.id),
        event_type=event_type[:100],
        payload=payload,
        disposition="needs_fetch" if handled else "unhandled",
        provider_subscription_id=str(notification.data.id) if preapproval else None,
        reason=(
            "the notification carries only ids: the resource's state needs a fetch from "
            "Mercado Pago"
            if handled
            else "unhandled notification type"
        ),
    )
