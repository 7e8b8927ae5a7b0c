"""The batched push on the real PostgreSQL as the runtime role: a batch writes one statement per
kind, yet each mutation is decided against the server as the batch's earlier mutations left it
(a row or natural key a pending write changes is written first), conflicts are stored with both
versions, and another tenant's rows are out of reach."""

from __future__ import annotations

import uuid

from lambdas.leads.models import LeadFields, Mutation
from lambdas.leads.service import LeadService
from lambdas.leads.sync_service import SyncService
from tests.integration import test_leads_repositories as repositories
from tests.integration.test_leads_repositories import KEY, _factory, fields

# the runtime role's database and two tenants, as the repository tests make them
database = repositories.database
tenants = repositories.tenants


def _create(cmid: str, lead_id: uuid.UUID, **values: str) -> Mutation:
    return Mutation(
        client_mutation_id=cmid, op="create", id=lead_id, fields=LeadFields.model_validate(values)
    )


def _update(cmid: str, lead_id: uuid.UUID, base: int, **values: str) -> Mutation:
    return Mutation(
        client_mutation_id=cmid,
        op="update",
        id=lead_id,
        base_version=base,
        fields=LeadFields.model_validate(values),
    )


def test_a_batch_that_creates_then_edits_then_deletes_a_lead_applies_each_in_order(
    database, tenants
) -> None:
    factory = _factory(database, tenants[0])
    sync = SyncService(factory, suppression_key=KEY)
    lead_id = uuid.uuid4()

    results = sync.push(
        [
            _create("c", lead_id, full_name="Bia", email="bia@example.com"),
            _update("u", lead_id, 1, full_name="Bia Souza", email="bia@example.com"),
            Mutation(client_mutation_id="d", op="delete", id=lead_id, base_version=2),
        ],
        device_id="phone",
        user_id=None,
    )

    assert [(r.outcome, r.version) for r in results] == [
        ("applied", 1),
        ("applied", 2),
        ("applied", 3),
    ]
    with factory() as uow:
        lead = uow.leads.get(lead_id, include_deleted=True)
    assert lead is not None
    assert (lead.full_name, lead.version, lead.deleted_at is not None) == ("Bia Souza", 3, True)


def test_two_creates_of_one_person_in_a_batch_give_a_create_create_conflict(
    database, tenants
) -> None:
    factory = _factory(database, tenants[0])
    sync = SyncService(factory, suppression_key=KEY)
    first, second = uuid.uuid4(), uuid.uuid4()

    a, b = sync.push(
        [
            _create("a", first, full_name="Caio", email="caio@example.com"),
            _create("b", second, full_name="Caio S.", email="CAIO@example.com"),
        ],
        device_id="phone",
        user_id=None,
    )

    assert (a.outcome, b.outcome, b.reason, b.id) == (
        "applied",
        "conflict",
        "create_create",
        first,
    )
    assert b.conflict_id is not None
    with factory() as uow:
        conflict = uow.conflicts.get(b.conflict_id)
        assert uow.leads.get(second, include_deleted=True) is None
    assert conflict is not None
    assert (conflict.mine["full_name"], conflict.theirs["full_name"]) == ("Caio S.", "Caio")


def test_an_update_to_another_live_leads_e_mail_is_rejected_and_the_rest_applied(
    database, tenants
) -> None:
    factory = _factory(database, tenants[0])
    leads = LeadService(factory, suppression_key=KEY)
    sync = SyncService(factory, suppression_key=KEY)
    ana = leads.create(fields(full_name="Ana", email="ana@example.com"))
    davi = leads.create(fields(full_name="Davi", email="davi@example.com"))

    taken, fine = sync.push(
        [
            _update("x", davi.id, 1, full_name="Davi", email="ana@example.com"),
            _update("y", ana.id, 1, full_name="Ana Lima", email="ana@example.com"),
        ],
        device_id="phone",
        user_id=None,
    )

    assert (taken.outcome, taken.reason) == ("rejected", "duplicate_lead")
    assert (fine.outcome, fine.version) == ("applied", 2)
    assert leads.get(davi.id).email == "davi@example.com"
    assert leads.get(ana.id).full_name == "Ana Lima"


def test_stale_updates_in_a_batch_store_one_conflict_each_with_both_versions(
    database, tenants
) -> None:
    factory = _factory(database, tenants[0])
    leads = LeadService(factory, suppression_key=KEY)
    sync = SyncService(factory, suppression_key=KEY)
    made = [leads.create(fields(full_name=f"L{n}")) for n in range(3)]
    for lead in made:
        leads.update(lead.id, {"status": "contacted"}, if_match='"1"')

    results = sync.push(
        [_update(f"s{n}", lead.id, 1, full_name=f"Mine {n}") for n, lead in enumerate(made)],
        device_id="tablet",
        user_id=None,
    )

    assert [(r.outcome, r.reason, r.version) for r in results] == [
        ("conflict", "update_update", 2)
    ] * 3
    with factory() as uow:
        stored = uow.conflicts.open_conflicts()
    assert sorted((c.mine["full_name"], c.theirs["status"]) for c in stored) == [
        ("Mine 0", "contacted"),
        ("Mine 1", "contacted"),
        ("Mine 2", "contacted"),
    ]
    assert {leads.get(lead.id).full_name for lead in made} == {"L0", "L1", "L2"}


def test_a_batch_cannot_reach_another_tenants_lead(database, tenants) -> None:
    tenant, other = tenants
    theirs = LeadService(_factory(database, other), suppression_key=KEY).create(
        fields(full_name="Outra", email="outra@example.com")
    )
    sync = SyncService(_factory(database, tenant), suppression_key=KEY)

    update, delete, create = sync.push(
        [
            _update("u", theirs.id, 1, full_name="Hijacked"),
            Mutation(client_mutation_id="d", op="delete", id=theirs.id, base_version=1),
            _create("c", theirs.id, full_name="Same id", email="outra@example.com"),
        ],
        device_id="phone",
        user_id=None,
    )

    assert (update.outcome, update.reason) == ("rejected", "not_found")
    assert (delete.outcome, delete.reason) == ("rejected", "not_found")
    assert (create.outcome, create.reason) == ("rejected", "duplicate_lead")
    still = LeadService(_factory(database, other), suppression_key=KEY).get(theirs.id)
    assert (still.full_name, still.version, still.deleted_at) == ("Outra", 1, None)
