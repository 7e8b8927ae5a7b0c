"""scripts/send_test_webhook.py against the local gateway over HTTP, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.devstack.identities import TENANTS
from tests.api.conftest import ApiClient

ROOT = Path(__file__).resolve().parents[2]
ACME = next(t for t in TENANTS if t.slug == "acme")
GLOBEX = next(t for t in TENANTS if t.slug == "globex")


def _run(gateway_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/send_test_webhook.py", "--url", gateway_url, *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _status(api: ApiClient, tenant_id: object) -> str:
    with api.db.owner() as conn:
        row = conn.execute(
            """
            SELECT status FROM public.subscriptions
            WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 1
            """,
            (tenant_id,),
        ).fetchone()
    assert row is not None
    return str(row["status"])


def test_a_stripe_payment_failure_for_acme_turns_it_past_due_once(
    api: ApiClient, gateway_url: str
) -> None:
    result = _run(
        gateway_url,
        "--provider",
        "stripe",
        "--event",
        "invoice.payment_failed",
        "--tenant",
        "acme",
        "--times",
        "3",
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["200", "200", "200"]
    assert '"processed"' in lines[0]
    assert all('"duplicate"' in line for line in lines[1:])
    assert _status(api, ACME.id) == "past_due"
    assert _status(api, GLOBEX.id) == "active"
    with api.db.owner() as conn:
        count = conn.execute("SELECT count(*) AS n FROM public.payment_events").fetchone()
    assert count is not None
    assert count["n"] == 1


@pytest.mark.parametrize("event", ["payment", "subscription_preapproval"])
def test_a_mercadopago_notification_is_accepted_and_recorded(
    api: ApiClient, gateway_url: str, event: str
) -> None:
    result = _run(gateway_url, "--provider", "mercadopago", "--event", event, "--tenant", "acme")

    assert result.returncode == 0, result.stderr
    assert '"received"' in result.stdout
    assert _status(api, ACME.id) == "active"


def test_a_wrong_secret_is_refused_and_the_script_says_so(api: ApiClient, gateway_url: str) -> None:
    result = _run(
        gateway_url,
        "--provider",
        "stripe",
        "--event",
        "invoice.paid",
        "--tenant",
        "acme",
        "--secret",
        "whsec_wrong",
    )

    assert result.returncode == 1
    assert result.stdout.startswith("401 ")
    assert "invalid_signature" in result.stdout


def test_help_names_the_providers_and_events() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/send_test_webhook.py", "--help"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0
    assert "invoice.payment_failed" in result.stdout
    assert "mercadopago" in result.stdout
