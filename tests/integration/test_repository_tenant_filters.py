"""Repositories filter by tenant themselves; row-level security is the backstop, not the only
guard. These run the repositories on the owner's connection, a superuser that row-level
security does not bind, so only each statement's own ``tenant_id`` filter keeps tenant B's
rows away from tenant A's repositories."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from lambdas.agents.repository import ActivationRepository
from lambdas.billing.providers import SubscriptionChange
from lambdas.billing.repositories.payments import PaymentEventRepository
from lambdas.billing.repositories.subscriptions import SubscriptionRepository
from lambdas.billing.repositories.trials import TrialRepository
from tests.integration.conftest import World
from tests.support.factories import create_trial

Conn = psycopg.Connection[Any]


@pytest.fixture
def agent_id(world: World, owner: Conn) -> uuid.UUID:
    row = owner.execute(
        "SELECT id FROM alquimista_platform.agents WHERE status <> 'retired' ORDER BY slug LIMIT 1"
    ).fetchone()
    assert row is not None
    found: uuid.UUID = row["id"]
    return found


def _bypasses_row_level_security(owner: Conn, world: World, trial_of_b: uuid.UUID) -> bool:
    with owner.transaction():
        owner.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(world.a.id),))
        row = owner.execute(
            "SELECT count(*) AS seen FROM public.trials WHERE id = %s", (trial_of_b,)
        ).fetchone()
    return row is not None and row["seen"] == 1


def test_tenant_a_trials_never_include_tenant_b_trials(
    world: World, owner: Conn, agent_id: uuid.UUID
) -> None:
    # Given a trial of tenant B, on a connection where row-level security would not hide it
    trial_of_b = create_trial(owner, world.b, agent_id=agent_id, usage_count=2)
    assert _bypasses_row_level_security(owner, world, trial_of_b)

    # When tenant A's repository looks it up, counts a use on it and lists its own
    with owner.transaction():
        trials_of_a = TrialRepository(owner, world.a.id)
        got = trials_of_a.get(trial_of_b)
        used = trials_of_a.record_use(trial_of_b)
        listed = trials_of_a.list_all()
        covered = trials_of_a.exists_for(agent_id=agent_id, subnucleo_id=None)

    # Then it finds nothing and changes nothing
    assert (got, used, covered) == (None, None, False)
    assert trial_of_b not in {trial.id for trial in listed}
    usage = owner.execute(
        "SELECT usage_count FROM public.trials WHERE id = %s", (trial_of_b,)
    ).fetchone()
    assert usage == {"usage_count": 2}


def test_tenant_a_subscriptions_never_resolve_to_tenant_b(world: World, owner: Conn) -> None:
    with owner.transaction():
        of_b = SubscriptionRepository(owner, world.b.id).latest()
    assert of_b is not None
    provider = owner.execute(
        "SELECT provider, provider_subscription_id FROM public.subscriptions WHERE id = %s",
        (of_b.id,),
    ).fetchone()
    assert provider is not None

    with owner.transaction():
        subscriptions_of_a = SubscriptionRepository(owner, world.a.id)
        latest = subscriptions_of_a.latest()
        live = subscriptions_of_a.live()
        applied_to_b = subscriptions_of_a.apply_provider_change(
            of_b.id,
            provider="stripe",
            change=SubscriptionChange(status="past_due"),
            occurred_at=None,
        )

    assert latest is not None
    assert live is not None
    assert of_b.id not in {latest.id, live.id}
    assert applied_to_b is False
    with owner.transaction():
        assert SubscriptionRepository(owner, world.b.id).latest() == of_b


def test_tenant_a_payment_events_never_include_tenant_b_events(world: World, owner: Conn) -> None:
    with owner.transaction():
        of_b = SubscriptionRepository(owner, world.b.id).latest()
        assert of_b is not None
        owner.execute(
            """
            INSERT INTO public.payment_events
                (provider, provider_event_id, event_type, subscription_id, status, payload)
            VALUES ('stripe', %s, 'invoice.paid', %s, 'processed', %s)
            """,
            (f"evt-{uuid.uuid4().hex}", of_b.id, Jsonb({})),
        )

    with owner.transaction():
        events_of_a = PaymentEventRepository(owner, world.a.id).list_for_tenant(limit=50)
        events_of_b = PaymentEventRepository(owner, world.b.id).list_for_tenant(limit=50)

    assert events_of_a == []
    assert [event.subscription_id for event in events_of_b] == [of_b.id]


def test_tenant_a_activations_never_include_tenant_b_activations(
    world: World, owner: Conn, agent_id: uuid.UUID
) -> None:
    with owner.transaction():
        ActivationRepository(owner, world.b.id).activate(
            agent_id, actor_id=world.b.users["admin"].id, source="plan"
        )

    with owner.transaction():
        activations_of_a = ActivationRepository(owner, world.a.id)
        got = activations_of_a.get(agent_id)
        active = activations_of_a.list_active()

    assert got is None
    assert active == []
