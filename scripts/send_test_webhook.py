"""Sign and send a realistic payment provider webhook to the local gateway (``make dev``).

The event is in the provider's own JSON shape (tests/fixtures/webhooks), about the tenant's
seeded subscription (Stripe ids ``sub_dev_…``/``cus_dev_…``, see
scripts/devstack/seed_catalog.py), signed with the fixed dev secret (docs/api.md) the way the
provider signs it.

Examples:
  uv run python scripts/send_test_webhook.py --provider stripe --event invoice.payment_failed \\
      --tenant acme
  uv run python scripts/send_test_webhook.py --provider stripe --event invoice.paid --tenant acme
  uv run python scripts/send_test_webhook.py --provider stripe --event invoice.paid \\
      --tenant acme --times 3        # redeliveries: processed once, then "duplicate"
  uv run python scripts/send_test_webhook.py --provider mercadopago --event payment --tenant acme
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.devstack.aws_resources import DEV_WEBHOOK_SECRETS  # noqa: E402
from scripts.devstack.identities import TENANTS  # noqa: E402
from scripts.devstack.seed_catalog import dev_subscription_ids  # noqa: E402
from scripts.devstack.webhook_events import (  # noqa: E402
    MERCADOPAGO_EVENTS,
    STRIPE_EVENTS,
    SignedDelivery,
    mercadopago_delivery,
    mercadopago_notification,
    stripe_delivery,
    stripe_event,
)

EVENTS = {"stripe": STRIPE_EVENTS, "mercadopago": MERCADOPAGO_EVENTS}


def build(provider: str, event: str, tenant: str, secret: str) -> SignedDelivery:
    tenant_id = next(t.id for t in TENANTS if t.slug == tenant)
    ours, subscription, customer = dev_subscription_ids(tenant_id)
    if provider == "stripe":
        payload = stripe_event(
            event,
            subscription=subscription,
            customer=customer,
            client_reference=str(ours) if event == "checkout.session.completed" else None,
        )
        return stripe_delivery(secret, payload)
    data_id = subscription if event == "subscription_preapproval" else "1325458930"
    return mercadopago_delivery(secret, mercadopago_notification(event, data_id=data_id))


def send(url: str, delivery: SignedDelivery) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310  # the URL is the operator's own gateway
        url.rstrip("/") + delivery.path,
        data=delivery.body,
        headers=delivery.headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--provider", required=True, choices=sorted(EVENTS))
    parser.add_argument(
        "--event",
        required=True,
        help=f"stripe: {', '.join(STRIPE_EVENTS)}; mercadopago: {', '.join(MERCADOPAGO_EVENTS)}",
    )
    parser.add_argument("--tenant", required=True, choices=[t.slug for t in TENANTS])
    parser.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the gateway (default: make dev's)"
    )
    parser.add_argument(
        "--secret", help="signing secret (default: the fixed dev secret of the provider)"
    )
    parser.add_argument(
        "--times", type=int, default=1, help="deliver the same event this many times"
    )
    args = parser.parse_args(argv)
    if args.event not in EVENTS[args.provider]:
        parser.error(f"--event for {args.provider}: one of {', '.join(EVENTS[args.provider])}")
    delivery = build(
        args.provider, args.event, args.tenant, args.secret or DEV_WEBHOOK_SECRETS[args.provider]
    )
    ok = True
    for _ in range(max(args.times, 1)):
        try:
            status, body = send(args.url, delivery)
        except OSError as error:
            print(f"cannot reach {args.url} ({error}): start `make dev` first", file=sys.stderr)
            return 2
        print(f"{status} {body}")
        ok = ok and status == 200
    print(json.dumps({"event_id": delivery.event_id, "path": delivery.path}), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
