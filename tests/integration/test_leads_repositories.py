"""Leads on the real PostgreSQL as the runtime role: duplicates, versions, the changes feed under
late commits, idempotent push, erasure, tenant isolation, meetings, retention and metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from lambdas.leads.errors import DuplicateLead, LeadSuppressed, MeetingOverlaps
from lambdas.leads.lgpd_service import LgpdService
from lambdas.leads.models import LeadFields, LeadFilters, Mutation
from lambdas.leads.preconditions import PreconditionFailed, PreconditionRequired
from lambdas.leads.service import LeadService
from lambdas.leads.suppression import lead_digests
from lambdas.leads.sync_service import SyncService
from lambdas.leads.uow import LeadsUnitOfWork
from lambdas.shared.db import Connection, Database
from lambdas.shared.events import validated_payload
from lambdas.shared.runtime import WRITERS
from lambdas.shared.scope import EventDraft, RequestScope, Writers
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, create_tenant

KEY = b"test-suppression-key-0123456789abcdef"


class AuditRows:
    """Audit, outbox and change writers that keep what they were given in memory (these tests
    are about the repositories; the real writers have their own); the events' payloads are
    still checked against their schemas, as the real change writer does."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, str | None, Mapping[str, Any] | None]] = []
        self.events: list[tuple[str, str]] = []

    def append(
        self,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.actions.append((action, resource_id, details))

    def emit(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None:
        self.events.append((event_type, aggregate_id))

    def emit_many(self, events: Sequence[EventDraft]) -> None:
        self.events.extend((event.event_type, event.aggregate_id) for event in events)

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None:
        data = validated_payload(event_type, version, aggregate_type, payload)
        self.append(
            event_type, resource_type=aggregate_type, resource_id=aggregate_id, details=data
        )
        self.emit(
            event_type, aggregate_type=aggregate_type, aggregate_id=aggregate_id, payload=data
        )


@pytest.fixture
def database(db: TestDatabase) -> Iterator[Database]:
    database = db.lambda_database()
    yield database
    database.close()


@pytest.fixture
def tenants(db: TestDatabase) -> tuple[TestTenant, TestTenant]:
    with db.owner() as conn:
        return create_tenant(conn), create_tenant(conn)


@pytest.fixture
def audit() -> AuditRows:
    return AuditRows()


def uow_factory(database: Database, tenant_id: uuid.UUID, audit: AuditRows | None = None):
    rows = audit or AuditRows()
    writers = Writers(
        audit=lambda conn, scope: rows,
        outbox=lambda conn, scope: rows,
        changes=lambda conn, scope: rows,
    )

    @contextmanager
    def factory() -> Iterator[LeadsUnitOfWork]:
        with (
            RequestScope(lambda: database, request_id="t", writers=writers) as scope,
            LeadsUnitOfWork(scope, tenant_id) as uow,
        ):
            yield uow

    return factory


def _factory(database: Database, tenant: TestTenant, audit: AuditRows | None = None) -> Any:
    return uow_factory(database, tenant.id, audit)


def fields(**values: Any) -> LeadFields:
    return LeadFields.model_validate(values)


def _scoped(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))


# -- duplicates and versions ------------------------------------------------------------------


def test_a_duplicate_e_mail_or_phone_is_refused_naming_the_existing_lead(database, tenants) -> None:
    tenant, other = tenants
    leads = LeadService(_factory(database, tenant), suppression_key=KEY)
    first = leads.create(fields(full_name="Ana", email="Ana@Example.com", phone="(11) 91234-5678"))

    with pytest.raises(DuplicateLead) as by_email:
        leads.create(fields(email=" ana@EXAMPLE.com "))
    with pytest.raises(DuplicateLead) as by_phone:
        leads.create(fields(phone="+55 11 91234-5678"))

    assert by_email.value.existing_id == first.id
    assert by_email.value.details == [{"existing_lead_id": str(first.id), "field": "email"}]
    assert (by_phone.value.existing_id, by_phone.value.field) == (first.id, "phone")
    # another tenant may hold the same person; a soft-deleted lead no longer blocks
    LeadService(_factory(database, other), suppression_key=KEY).create(
        fields(email="ana@example.com")
    )
    leads.delete(first.id, if_match=f'"{first.version}"')
    assert leads.create(fields(email="ana@example.com")).id != first.id


def test_an_update_needs_the_current_version(database, tenants) -> None:
    leads = LeadService(_factory(database, tenants[0]), suppression_key=KEY)
    lead = leads.create(fields(full_name="Bia", company_tax_id="11.222.333/0001-81"))
    assert lead.company_tax_id == "11222333000181"

    updated = leads.update(lead.id, {"status": "contacted"}, if_match='"1"')
    with pytest.raises(PreconditionFailed) as stale:
        leads.update(lead.id, {"status": "qualified"}, if_match='"1"')
    with pytest.raises(PreconditionRequired):
        leads.update(lead.id, {"status": "qualified"}, if_match=None)

    assert updated.version == 2
    assert stale.value.current_version == 2
    assert leads.get(lead.id).status == "contacted"


def test_changing_a_lead_s_e_mail_to_another_lead_s_is_a_duplicate(database, tenants) -> None:
    leads = LeadService(_factory(database, tenants[0]), suppression_key=KEY)
    first = leads.create(fields(email="a@example.com"))
    second = leads.create(fields(email="b@example.com"))

    with pytest.raises(DuplicateLead) as caught:
        leads.update(second.id, {"email": "A@example.com"}, if_match='"1"')

    assert caught.value.existing_id == first.id
    assert leads.get(second.id).version == 1


def test_the_list_filters_searches_and_pages(database, tenants) -> None:
    leads = LeadService(_factory(database, tenants[0]), suppression_key=KEY)
    for n in range(7):
        leads.create(
            fields(
                full_name=f"Pessoa {n}",
                company="Acme Ltda" if n % 2 else "Globex",
                email=f"p{n}@example.com",
                tags=["vip"] if n < 3 else [],
            )
        )

    seen: list[str] = []
    cursor = None
    while True:
        page = leads.page(LeadFilters(q="acme"), cursor=cursor, limit=2)
        seen += [lead.full_name or "" for lead in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert sorted(seen) == ["Pessoa 1", "Pessoa 3", "Pessoa 5"]
    vip = leads.page(LeadFilters(tags=["vip"], q="p1@ex"), cursor=None, limit=10)
    assert [lead.full_name for lead in vip.items] == ["Pessoa 1"]
    assert leads.page(LeadFilters(q="100%"), cursor=None, limit=10).items == []


def test_the_text_search_finds_a_substring_for_broad_and_rare_terms(db, database, tenants) -> None:
    # Given older leads whose texts resemble "acme 12", and newer fillers: a broad term is found
    # among the newest rows, a rare one through the trigram index (more than ten pages of
    # newest rows hold no match)
    tenant, other = tenants
    specials = ["Acme 12 Ltda", "ACME 120", "12 Acme", "Acme1 2", "Acme_12", "Xacme 12"]
    with db.runtime() as conn:
        _scoped(conn, tenant.id)
        for hours, name in enumerate(specials, start=1):
            conn.execute(
                """
                INSERT INTO nigredo_leads.leads (tenant_id, company, email_normalized, created_at)
                VALUES (%s, %s, %s, now() - make_interval(hours => %s))
                """,
                (tenant.id, name, f"c{hours}@example.com", hours),
            )
        conn.execute(
            """
            INSERT INTO nigredo_leads.leads (tenant_id, full_name, company, created_at)
            SELECT %s, 'Pessoa ' || n, 'Globex', now() - make_interval(secs => n)
            FROM generate_series(1, 40) AS n
            """,
            (tenant.id,),
        )
        conn.commit()
        _scoped(conn, tenant.id)
        rows = conn.execute(
            """
            SELECT id, coalesce(full_name, '') || ' ' || coalesce(company, '') || ' '
                       || coalesce(email_normalized, '') AS text
            FROM nigredo_leads.leads ORDER BY created_at DESC, id DESC
            """
        ).fetchall()
        conn.commit()
    leads = LeadService(_factory(database, tenant), suppression_key=KEY)
    LeadService(_factory(database, other), suppression_key=KEY).create(
        fields(company="Acme 12 Ltda")
    )

    def walk(term: str, limit: int) -> list[uuid.UUID]:
        found, cursor = [], None
        while True:
            page = leads.page(LeadFilters(q=term), cursor=cursor, limit=limit)
            found += [lead.id for lead in page.items]
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    # When each term is searched page by page; Then the pages hold exactly the tenant's live
    # leads whose text holds the term, ignoring case, newest first
    for term, limit in [("acme 12", 1), ("ACME", 2), ("globex", 5), ("pessoa 1", 3), ("e 1", 2)]:
        expected = [r["id"] for r in rows if term.lower() in r["text"].lower()]
        assert walk(term, limit) == expected, term
    by_company = {r["id"]: r["text"].split(" ")[1] for r in rows}
    assert [by_company[i] for i in walk("acme 12", 2)] == ["Acme", "ACME", "Xacme"]
    assert [by_company[i] for i in walk("acme_12", 2)] == ["Acme_12"]


def test_the_list_pages_by_status_campaign_and_owner_newest_first(database, tenants) -> None:
    leads = LeadService(_factory(database, tenants[0]), suppression_key=KEY)
    with _factory(database, tenants[0])() as uow:
        campaign = uow.campaigns.create(name="C", channel="email").id
        uow.commit()
    owner = tenants[0].user("member").id
    made = [
        leads.create(
            fields(
                full_name=f"Pessoa {n}",
                status="new" if n % 2 else "contacted",
                campanha_id=campaign if n % 3 else None,
                assigned_to=owner if n < 4 else None,
            )
        )
        for n in range(8)
    ]
    newest_first = sorted(made, key=lambda lead: (lead.created_at, lead.id), reverse=True)

    def walk(filters: LeadFilters) -> list[str | None]:
        names, cursor = [], None
        while True:
            page = leads.page(filters, cursor=cursor, limit=2)
            names += [lead.full_name for lead in page.items]
            if page.next_cursor is None:
                return names
            cursor = page.next_cursor

    def expected(keep: Any) -> list[str | None]:
        return [lead.full_name for lead in newest_first if keep(lead)]

    assert walk(LeadFilters(status="new", campanha_id=campaign)) == expected(
        lambda lead: lead.status == "new" and lead.campanha_id == campaign
    )
    assert walk(LeadFilters(assigned_to=owner)) == expected(lambda lead: lead.assigned_to)
    assert walk(LeadFilters(status="contacted", q="pessoa")) == expected(
        lambda lead: lead.status == "contacted"
    )


def test_the_list_function_reads_only_the_scoped_tenant_s_leads(db, database, tenants) -> None:
    # Given leads that match the same search and tag in two tenants
    ids: dict[uuid.UUID, set[uuid.UUID]] = {}
    for tenant in tenants:
        leads = LeadService(_factory(database, tenant), suppression_key=KEY)
        ids[tenant.id] = {
            leads.create(fields(full_name=f"Acme {n}", tags=["vip"])).id for n in range(3)
        }
    mine, theirs = tenants
    call = """
        SELECT nigredo_leads.list_lead_ids_v1(
            NULL, NULL, NULL, %s, NULL, NULL, NULL, NULL, %s, NULL, NULL, %s) AS id
    """

    with db.runtime() as conn:
        # When the runtime role calls the function scoped to one tenant, or to none
        _scoped(conn, mine.id)
        by_search = {r["id"] for r in conn.execute(call, (None, "%acme%", 10)).fetchall()}
        by_tag = {r["id"] for r in conn.execute(call, (["vip"], None, 10)).fetchall()}
        conn.rollback()
        unscoped = conn.execute(call, (None, "%acme%", 10)).fetchall()
        conn.rollback()
        # the function's policy is its owner's, not the runtime role's
        _scoped(conn, mine.id)
        visible = {r["id"] for r in conn.execute("SELECT id FROM nigredo_leads.leads").fetchall()}
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE alquimista_leads_list")
        conn.rollback()
        _scoped(conn, mine.id)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute(call, (None, "%acme%", 100_000))

    # Then it sees that tenant's leads only, and nothing without a tenant
    assert by_search == by_tag == visible == ids[mine.id]
    assert unscoped == []
    other = LeadService(_factory(database, theirs), suppression_key=KEY)
    page = other.page(LeadFilters(q="acme", tags=["vip"]), cursor=None, limit=10)
    assert {lead.id for lead in page.items} == ids[theirs.id]


# -- the changes feed ---------------------------------------------------------------------------


def _insert_lead(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, name: str) -> dict[str, Any]:
    _scoped(conn, tenant_id)
    conn.execute(
        "INSERT INTO nigredo_leads.leads (tenant_id, full_name) VALUES (%s, %s)", (tenant_id, name)
    )
    row = conn.execute(
        """
        SELECT l.id, c.seq FROM nigredo_leads.leads AS l
        JOIN nigredo_leads.changes AS c ON c.entity_id = l.id
        WHERE l.full_name = %s
        """,
        (name,),
    ).fetchone()
    assert row is not None
    return dict(row)


def test_the_feed_never_skips_a_row_whose_transaction_started_first_and_committed_last(
    db, database, tenants
) -> None:
    tenant = tenants[0]
    leads = LeadService(_factory(database, tenant), suppression_key=KEY)
    with db.runtime() as early, db.runtime() as late:
        # Given a transaction that wrote first and is still open...
        first = _insert_lead(early, tenant.id, "started first")
        # ...and one that wrote after it and committed
        second = _insert_lead(late, tenant.id, "committed first")
        late.commit()
        assert first["seq"] < second["seq"]  # a feed ordered by seq would pass the first row

        # When a client reads the feed now
        before = leads.changes(cursor=None, limit=100)

        # Then it gets neither (the committed row waits behind the open transaction)...
        assert before.changes == []
        early.commit()

    # ...and after the first commits it gets both, from the cursor it held
    after = leads.changes(cursor=before.cursor, limit=100)
    assert [c.id for c in after.changes] == [first["id"], second["id"]]
    assert [c.data["full_name"] for c in after.changes if c.data] == [
        "started first",
        "committed first",
    ]
    assert leads.changes(cursor=after.cursor, limit=100).changes == []


def test_a_multi_row_write_moves_each_of_its_rows_in_the_feed_once(db, tenants) -> None:
    # Given three leads written in one statement, two of them then deleted softly in another
    tenant, other = tenants
    with db.runtime() as conn:
        _scoped(conn, other.id)
        conn.execute(
            "INSERT INTO nigredo_leads.leads (tenant_id, full_name) VALUES (%s, 'X')", (other.id,)
        )
        conn.commit()
        _scoped(conn, tenant.id)
        ids = [
            r["id"]
            for r in conn.execute(
                """
                INSERT INTO nigredo_leads.leads (tenant_id, full_name)
                SELECT %s, 'Lead ' || n FROM generate_series(1, 3) AS n RETURNING id
                """,
                (tenant.id,),
            ).fetchall()
        ]
        conn.execute(
            "UPDATE nigredo_leads.leads SET deleted_at = now() WHERE id = ANY(%s)", (ids[:2],)
        )
        # When the feed's rows are read in the writing transaction, and one lead is purged
        rows = conn.execute(
            """
            SELECT op, version, txid = pg_current_xact_id() AS this_transaction
            FROM nigredo_leads.changes WHERE entity = 'lead'
            """
        ).fetchall()
        conn.commit()
    with db.owner() as conn:
        conn.execute("DELETE FROM nigredo_leads.leads WHERE id = %s", (ids[0],))
        left = conn.execute(
            "SELECT tenant_id, entity_id FROM nigredo_leads.changes WHERE entity = 'lead'"
        ).fetchall()

    # Then each lead has one row, at its last version and op, in the writer's transaction; the
    # purged one has none, and the other tenant's row is untouched
    assert sorted((r["op"], r["version"], r["this_transaction"]) for r in rows) == [
        ("delete", 2, True),
        ("delete", 2, True),
        ("upsert", 1, True),
    ]
    assert {(r["tenant_id"], r["entity_id"]) for r in left if r["tenant_id"] == tenant.id} == {
        (tenant.id, lead_id) for lead_id in ids[1:]
    }
    assert [r["tenant_id"] for r in left].count(other.id) == 1


def test_the_feed_pages_in_order_and_reports_deletes(database, tenants) -> None:
    leads = LeadService(_factory(database, tenants[0]), suppression_key=KEY)
    created = [leads.create(fields(full_name=f"L{n}")) for n in range(5)]
    leads.delete(created[0].id, if_match='"1"')

    got = []
    cursor = None
    while True:
        page = leads.changes(cursor=cursor, limit=2)
        got += page.changes
        cursor = page.cursor
        if not page.has_more:
            break

    assert [c.id for c in got] == [lead.id for lead in created[1:]] + [created[0].id]
    assert (got[-1].op, got[-1].version, got[-1].data) == ("delete", 2, None)


def test_purged_rows_leave_the_feed_and_old_cursors_must_resync(db, database, tenants) -> None:
    tenant = tenants[0]
    factory = _factory(database, tenant)
    leads = LeadService(factory, suppression_key=KEY)
    keep = leads.create(fields(full_name="keep"))
    gone = leads.create(fields(full_name="gone", email="gone@example.com"))
    old_cursor = leads.changes(cursor=None, limit=10).cursor
    leads.delete(gone.id, if_match='"1"')
    with db.owner() as conn:
        conn.execute(
            "UPDATE nigredo_leads.leads SET deleted_at = now() - interval '31 days' WHERE id = %s",
            (gone.id,),
        )

    with factory() as uow:
        purged = uow.retention.purge(days=30)
        uow.commit()

    assert purged == 1
    stale = leads.changes(cursor=old_cursor, limit=10)
    assert stale.resync_required
    # a client starting again (without a cursor, or from the one the refusal gave) pages on
    for start in (None, stale.cursor):
        fresh = leads.changes(cursor=start, limit=1)
        assert [c.id for c in fresh.changes] == [keep.id]
        rest = leads.changes(cursor=fresh.cursor, limit=1)
        assert (rest.changes, rest.resync_required) == ([], False)


# -- sync push ------------------------------------------------------------------------------------


def test_a_thousand_mutation_push_is_applied_once_and_a_replay_changes_nothing(
    db, database, tenants
) -> None:
    tenant = tenants[0]
    sync = SyncService(_factory(database, tenant), suppression_key=KEY)
    batch = [
        Mutation(
            client_mutation_id=f"m-{n}",
            op="create",
            id=uuid.uuid4(),
            fields=fields(full_name=f"Offline {n}", email=f"offline{n}@example.com"),
        )
        for n in range(1000)
    ]

    first = sync.push(batch, device_id="phone-1", user_id=None)
    with db.owner() as conn:
        state = conn.execute(
            """
            SELECT count(*) AS n, max(version) AS v, max(updated_at) AS at,
                   (SELECT max(seq) FROM nigredo_leads.changes) AS seq
            FROM nigredo_leads.leads WHERE tenant_id = %s
            """,
            (tenant.id,),
        ).fetchone()
    replay = sync.push(batch, device_id="phone-1", user_id=None)
    with db.owner() as conn:
        again = conn.execute(
            """
            SELECT count(*) AS n, max(version) AS v, max(updated_at) AS at,
                   (SELECT max(seq) FROM nigredo_leads.changes) AS seq
            FROM nigredo_leads.leads WHERE tenant_id = %s
            """,
            (tenant.id,),
        ).fetchone()

    assert {r.outcome for r in first} == {"applied"}
    assert state is not None
    assert state["n"] == 1000
    assert all(r.replayed for r in replay)
    assert [r.model_dump(exclude={"replayed"}) for r in replay] == [
        r.model_dump(exclude={"replayed"}) for r in first
    ]
    assert again == state


def test_two_offline_edits_of_one_lead_give_a_conflict_with_both_versions(
    database, tenants
) -> None:
    factory = _factory(database, tenants[0])
    leads = LeadService(factory, suppression_key=KEY)
    sync = SyncService(factory, suppression_key=KEY)
    lead = leads.create(fields(full_name="Caio", email="caio@example.com"))
    base = lead.fields()

    mine = base.model_copy(update={"status": "won"})
    theirs = base.model_copy(update={"status": "lost"})
    sync.push(
        [Mutation(client_mutation_id="a", op="update", id=lead.id, base_version=1, fields=theirs)],
        device_id="tablet",
        user_id=None,
    )
    [result] = sync.push(
        [Mutation(client_mutation_id="b", op="update", id=lead.id, base_version=1, fields=mine)],
        device_id="phone",
        user_id=None,
    )

    assert (result.outcome, result.reason, result.version) == ("conflict", "update_update", 2)
    assert result.conflict_id is not None
    with factory() as uow:
        conflict = uow.conflicts.get(result.conflict_id)
    assert conflict is not None
    assert (conflict.mine["status"], conflict.theirs["status"]) == ("won", "lost")

    sync.resolve(result.conflict_id, "keep_mine", merged=None, user_id=None)
    assert leads.get(lead.id).status == "won"
    with pytest.raises(Exception, match="already resolved"):
        sync.resolve(result.conflict_id, "keep_theirs", merged=None, user_id=None)


def test_last_writer_wins_applies_a_stale_update_only_where_the_tenant_chose_it(
    database, tenants
) -> None:
    factory = _factory(database, tenants[0])
    leads = LeadService(factory, suppression_key=KEY)
    sync = SyncService(factory, suppression_key=KEY)
    lead = leads.create(fields(full_name="Davi"))
    leads.update(lead.id, {"status": "contacted"}, if_match='"1"')
    with factory() as uow:
        uow.sync_settings.set_last_writer_wins(True)
        uow.commit()

    [result] = sync.push(
        [
            Mutation(
                client_mutation_id="x",
                op="update",
                id=lead.id,
                base_version=1,
                fields=lead.fields().model_copy(update={"status": "qualified"}),
            )
        ],
        device_id="d",
        user_id=None,
    )

    assert (result.outcome, result.version) == ("applied", 3)
    assert leads.get(lead.id).status == "qualified"


# -- LGPD -----------------------------------------------------------------------------------------


def test_erasure_leaves_no_personal_data_and_keeps_the_counts(db, database, tenants, audit) -> None:
    tenant = tenants[0]
    factory = _factory(database, tenant, audit)
    leads = LeadService(factory, suppression_key=KEY)
    lgpd = LgpdService(factory, suppression_key=KEY)
    sync = SyncService(factory, suppression_key=KEY)
    person = leads.create(
        fields(
            full_name="Eduarda Quintela",
            email="eduarda.quintela@example.com",
            phone="(21) 99876-5432",
            job_title="Diretora Zeta",
            tags=["eduarda-tag"],
        )
    )
    lgpd.record_consent(
        person.id,
        "granted",
        channel="form",
        purposes=["marketing"],
        text_version="v1",
        ip="203.0.113.77",
        recorded_by=None,
    )
    today = datetime.now(UTC)
    with factory() as uow:
        uow.interactions.append(
            person.id, channel="email", direction="outbound", content="Olá Eduarda Quintela"
        )
        uow.meetings.schedule(
            person.id,
            owner_user_id=None,
            scheduled_for=today + timedelta(days=1),
            duration_minutes=30,
        )
        uow.conn.execute(
            """
            UPDATE nigredo_leads.agendamentos SET notes = 'ligar para Eduarda Quintela'
            WHERE lead_id = %s
            """,
            (person.id,),
        )
        uow.conn.execute(
            """
            INSERT INTO nigredo_leads.form_submissions (
                tenant_id, lead_id, form_key, payload, consent_given, consent_text, source_ip)
            VALUES (%s, %s, 'site', %s, true, 'Aceito, Eduarda Quintela', '203.0.113.77')
            """,
            (tenant.id, person.id, psycopg.types.json.Jsonb({"name": "Eduarda Quintela"})),
        )
        uow.retention.rollup(today.date())
        uow.commit()
    sync.push(
        [
            Mutation(
                client_mutation_id="c",
                op="update",
                id=person.id,
                base_version=1,
                fields=person.fields().model_copy(update={"full_name": "Eduarda Q."}),
            )
        ],
        device_id="d",
        user_id=None,
    )
    metrics_before = _metrics(db, tenant.id)

    lgpd.erase(person.id, suppress=True, requested_by=tenant.user("admin").id)

    needles = ["eduarda", "quintela", "99876", "203.0.113.77", "zeta", "eduarda-tag"]
    with db.owner() as conn:
        tables = [
            r["table_name"]
            for r in conn.execute(
                """
                SELECT table_name FROM information_schema.tables
                WHERE table_schema = 'nigredo_leads' AND table_type = 'BASE TABLE'
                """
            ).fetchall()
        ]
        for table in tables:
            dump = conn.execute(
                psycopg.sql.SQL(
                    "SELECT coalesce(string_agg(to_jsonb(t)::text, ' '), '') AS d "
                    "FROM nigredo_leads.{} AS t"
                ).format(psycopg.sql.Identifier(table))
            ).fetchone()
            text = (dump["d"] if dump else "").lower()
            assert not [n for n in needles if n in text], table
    with factory() as uow:
        uow.retention.rollup(today.date())
        uow.commit()
    assert _metrics(db, tenant.id) == metrics_before
    assert [a[0] for a in audit.actions if a[0].startswith(("lead.consent", "data_subject"))] == [
        "lead.consent_recorded",
        "data_subject_request.completed",
    ]
    assert "eduarda" not in repr(audit.actions).lower()
    # the person is suppressed: never created again
    with pytest.raises(LeadSuppressed):
        leads.create(fields(email="EDUARDA.QUINTELA@example.com"))


def _metrics(db: TestDatabase, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    with db.owner() as conn:
        return conn.execute(
            """
            SELECT campanha_id, day, leads_created, contacted, replied, interactions,
                   meetings_scheduled, conversions
            FROM nigredo_leads.metricas_diarias WHERE tenant_id = %s ORDER BY day
            """,
            (tenant_id,),
        ).fetchall()


def test_the_access_export_holds_everything_about_the_person(database, tenants, audit) -> None:
    factory = _factory(database, tenants[0], audit)
    leads = LeadService(factory, suppression_key=KEY)
    lgpd = LgpdService(factory, suppression_key=KEY)
    lead = leads.create(fields(full_name="Fabio", email="fabio@example.com"))
    lgpd.record_consent(
        lead.id,
        "granted",
        channel="form",
        purposes=["x"],
        text_version="v2",
        ip=None,
        recorded_by=None,
    )
    lgpd.record_consent(
        lead.id,
        "withdrawn",
        channel="email",
        purposes=[],
        text_version=None,
        ip=None,
        recorded_by=None,
    )
    with factory() as uow:
        uow.interactions.append(lead.id, channel="phone", direction="inbound", content="oi")
        uow.commit()

    export = lgpd.export(lead.id, requested_by=None)

    assert export["lead"]["email"] == "fabio@example.com"
    assert "search_text" not in export["lead"]  # a copy of the name, company and e-mail
    assert export["lead"]["consent_status"] == "withdrawn"
    assert [c["action"] for c in export["consents"]] == ["granted", "withdrawn"]
    assert [i["content"] for i in export["interactions"]] == ["oi"]
    assert [r["kind"] for r in export["requests"]] == ["access"]
    due = datetime.fromisoformat(export["requests"][0]["due_at"])
    created = datetime.fromisoformat(export["requests"][0]["created_at"])
    assert due - created == timedelta(days=15)


def test_the_consent_history_is_append_only(db, database, tenants, audit) -> None:
    tenant = tenants[0]
    factory = _factory(database, tenant, audit)
    lead = LeadService(factory, suppression_key=KEY).create(fields(full_name="Gil"))
    LgpdService(factory, suppression_key=KEY).record_consent(
        lead.id, "granted", channel="form", purposes=["m"], text_version="v1", ip="10.0.0.1",
        recorded_by=None,
    )  # fmt: skip
    with db.runtime() as conn:
        _scoped(conn, tenant.id)
        for statement in (
            "UPDATE nigredo_leads.consent_events SET purposes = '{all}'",
            "UPDATE nigredo_leads.consent_events SET ip_hmac = repeat('0', 64)",
            "DELETE FROM nigredo_leads.consent_events",
        ):
            with pytest.raises(psycopg.errors.CheckViolation) as refused, conn.transaction():
                conn.execute(statement)
            assert refused.value.diag.constraint_name == "consent_events_append_only"
        # the erasure's redaction is the one change allowed; the purge takes rows with the lead
        conn.execute("UPDATE nigredo_leads.consent_events SET ip_hmac = NULL")
        conn.execute("DELETE FROM nigredo_leads.leads WHERE id = %s", (lead.id,))
        left = conn.execute("SELECT count(*) AS n FROM nigredo_leads.consent_events").fetchone()
        assert left == {"n": 0}


# -- meetings, metrics, isolation -----------------------------------------------------------------


def test_an_owner_cannot_have_overlapping_meetings(database, tenants) -> None:
    tenant = tenants[0]
    factory = _factory(database, tenant)
    owner, other = tenant.user("member").id, tenant.user("admin").id
    lead = LeadService(factory, suppression_key=KEY).create(fields(full_name="Hugo"))
    at = datetime(2030, 3, 10, 14, 0, tzinfo=UTC)
    with factory() as uow:
        first = uow.meetings.schedule(
            lead.id, owner_user_id=owner, scheduled_for=at, duration_minutes=60
        )
        uow.commit()

    with factory() as uow, pytest.raises(MeetingOverlaps):
        uow.meetings.schedule(
            lead.id,
            owner_user_id=owner,
            scheduled_for=at + timedelta(minutes=30),
            duration_minutes=30,
        )
    with factory() as uow:
        back_to_back = uow.meetings.schedule(
            lead.id, owner_user_id=owner, scheduled_for=at + timedelta(hours=1), duration_minutes=30
        )
        uow.meetings.schedule(lead.id, owner_user_id=other, scheduled_for=at, duration_minutes=60)
        with pytest.raises(MeetingOverlaps):
            uow.meetings.reschedule(
                back_to_back.id, scheduled_for=at, duration_minutes=30, expected_version=1
            )
        canceled = uow.meetings.set_status(first.id, "canceled", expected_version=1)
        moved = uow.meetings.reschedule(
            back_to_back.id, scheduled_for=at, duration_minutes=30, expected_version=1
        )
        uow.commit()

    assert canceled is not None
    assert canceled.version == 2
    assert moved is not None
    assert moved.ends_at == at + timedelta(minutes=30)


def test_the_daily_rollup_is_idempotent_per_campaign(db, database, tenants) -> None:
    tenant = tenants[0]
    factory = _factory(database, tenant)
    leads = LeadService(factory, suppression_key=KEY)
    with factory() as uow:
        campaign = uow.campaigns.create(name="Q1", channel="email")
        uow.commit()
    a = leads.create(fields(full_name="A", campanha_id=campaign.id))
    b = leads.create(fields(full_name="B", campanha_id=campaign.id))
    leads.create(fields(full_name="C"))
    leads.update(a.id, {"status": "won"}, if_match='"1"')
    with factory() as uow:
        uow.interactions.append(a.id, channel="email", direction="outbound")
        uow.interactions.append(a.id, channel="email", direction="outbound")
        uow.interactions.append(b.id, channel="email", direction="outbound")
        uow.interactions.append(b.id, channel="email", direction="inbound")
        uow.meetings.schedule(
            b.id, owner_user_id=None, scheduled_for=datetime.now(UTC), duration_minutes=30
        )
        day = uow.conn.execute(
            "SELECT (now() AT TIME ZONE 'America/Sao_Paulo')::date AS d"
        ).fetchone()
        assert day is not None
        assert uow.retention.rollup(day["d"]) == 2
        assert uow.retention.rollup(day["d"]) == 2
        rows = uow.retention.metrics(day_from=day["d"], day_to=day["d"])
        uow.commit()

    by_campaign = {r["campanha_id"]: r for r in rows}
    q1 = by_campaign[campaign.id]
    assert (q1["leads_created"], q1["contacted"], q1["replied"], q1["interactions"]) == (2, 2, 1, 4)
    assert (q1["meetings_scheduled"], q1["conversions"]) == (1, 1)
    assert by_campaign[None]["leads_created"] == 1


def test_no_leads_table_shows_another_tenant_s_rows(db, database, tenants, audit) -> None:
    mine, theirs = tenants
    factory = _factory(database, mine, audit)
    leads = LeadService(factory, suppression_key=KEY)
    lead = leads.create(fields(full_name="Iris", email="iris@example.com"))
    LgpdService(factory, suppression_key=KEY).erase(lead.id, suppress=True, requested_by=None)
    other = leads.create(fields(full_name="Joao", email="joao@example.com"))
    LgpdService(factory, suppression_key=KEY).record_consent(
        other.id, "granted", channel="form", purposes=["m"], text_version="v1", ip=None,
        recorded_by=None,
    )  # fmt: skip
    SyncService(factory, suppression_key=KEY).push(
        [Mutation(client_mutation_id="1", op="update", id=other.id, base_version=9,
                  fields=other.fields())],
        device_id="d", user_id=None,
    )  # fmt: skip
    with factory() as uow:
        uow.interactions.append(other.id, channel="phone", direction="outbound")
        uow.meetings.schedule(
            other.id, owner_user_id=None, scheduled_for=datetime.now(UTC), duration_minutes=30
        )
        uow.campaigns.create(name="C", channel="email")
        uow.sync_settings.set_last_writer_wins(True)
        # the tenant's own day (its zone, America/Sao_Paulo): the UTC date is a day ahead of it
        # between 00:00 and 03:00 UTC, and would roll up nothing
        uow.retention.rollup(datetime.now(ZoneInfo(uow.meetings.time_zone())).date())
        uow.commit()

    with db.runtime() as conn:
        tables = [
            r["table_name"]
            for r in conn.execute(
                """
                SELECT table_name FROM information_schema.tables
                WHERE table_schema = 'nigredo_leads' AND table_type = 'BASE TABLE'
                """
            ).fetchall()
        ]
        _scoped(conn, mine.id)
        seen_by_owner = {t: _count(conn, t) for t in tables}
        conn.commit()
        _scoped(conn, theirs.id)
        seen_by_other = {t: _count(conn, t) for t in tables}

    populated = {t for t, n in seen_by_owner.items() if n}
    assert populated >= {
        "leads", "campanhas", "interacoes", "agendamentos", "metricas_diarias", "blocklist",
        "changes", "sync_settings", "sync_mutations", "sync_conflicts", "consent_events",
        "data_subject_requests",
    }  # fmt: skip
    assert seen_by_other == dict.fromkeys(tables, 0)
    other_leads = LeadService(_factory(database, theirs), suppression_key=KEY)
    assert other_leads.changes(cursor=None, limit=100).changes == []
    with pytest.raises(Exception, match="not found"):
        other_leads.get(other.id)


def _count(conn: Connection | psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(
        psycopg.sql.SQL("SELECT count(*) AS n FROM nigredo_leads.{}").format(
            psycopg.sql.Identifier(table)
        )
    ).fetchone()
    return int(row["n"]) if row else 0


def test_a_batch_sees_its_own_earlier_mutations(database, tenants) -> None:
    factory = _factory(database, tenants[0])
    sync = SyncService(factory, suppression_key=KEY)
    with factory() as uow:
        uow.suppression.add(
            lead_digests(KEY, email="blocked@example.com", phone=None),
            reason="opt_out",
            added_by=None,
        )
        uow.commit()
    lead_id, twin_id, blocked_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    base = fields(full_name="Lia", email="lia@example.com")

    results = sync.push(
        [
            Mutation(client_mutation_id="1", op="create", id=lead_id, fields=base),
            Mutation(
                client_mutation_id="2",
                op="update",
                id=lead_id,
                base_version=1,
                fields=base.model_copy(update={"email": "lia2@example.com"}),
            ),
            Mutation(client_mutation_id="3", op="create", id=twin_id, fields=base),
            Mutation(
                client_mutation_id="4",
                op="create",
                id=uuid.uuid4(),
                fields=fields(email="lia2@example.com"),
            ),
            Mutation(
                client_mutation_id="5",
                op="create",
                id=blocked_id,
                fields=fields(email="Blocked@example.com"),
            ),
            Mutation(client_mutation_id="6", op="delete", id=uuid.uuid4(), base_version=1),
        ],
        device_id="d",
        user_id=None,
    )

    assert [(r.outcome, r.reason, r.version) for r in results] == [
        ("applied", None, 1),
        ("applied", None, 2),
        ("applied", None, 1),  # the e-mail was freed by mutation 2
        ("conflict", "create_create", 2),
        ("rejected", "lead_suppressed", None),
        ("rejected", "not_found", None),
    ]
    assert results[3].id == lead_id
    with pytest.raises(Exception, match="twice"):
        sync.push(
            [Mutation(client_mutation_id="7", op="delete", id=lead_id, base_version=2)] * 2,
            device_id="d",
            user_id=None,
        )


def test_the_lgpd_services_audit_rows_pass_the_real_audit_writer(db, database, tenants) -> None:
    # Given the services over the function's registered writers (the audit SQL function
    # refuses personal data in metadata keys)
    tenant = tenants[0]

    @contextmanager
    def factory() -> Iterator[LeadsUnitOfWork]:
        with (
            RequestScope(lambda: database, request_id="t", writers=WRITERS) as scope,
            LeadsUnitOfWork(scope, tenant.id) as uow,
        ):
            yield uow

    person = LeadService(factory, suppression_key=KEY).create(
        fields(full_name="Iara Tavares", email="iara.tavares@example.com")
    )
    lgpd = LgpdService(factory, suppression_key=KEY)

    # When consent, access and erasure are recorded
    lgpd.record_consent(
        person.id,
        "granted",
        channel="form",
        purposes=["marketing"],
        text_version="v1",
        ip="203.0.113.9",
        recorded_by=None,
    )
    lgpd.export(person.id, requested_by=None)
    lgpd.erase(person.id, suppress=True, requested_by=None)

    # Then each is in the tenant's audit chain, with no personal data in it
    with db.owner() as owner:
        rows = owner.execute(
            "SELECT action, resource_id, metadata FROM alquimista_platform.audit_logs "
            "WHERE tenant_id = %s ORDER BY seq",
            (tenant.id,),
        ).fetchall()
    assert [(r["action"], r["metadata"].get("kind")) for r in rows] == [
        ("lead.created", None),
        ("lead.consent_recorded", None),
        ("data_subject_request.completed", "access"),
        ("data_subject_request.completed", "erasure"),
    ]
    assert {r["metadata"].get("lead_id", r["resource_id"]) for r in rows} == {str(person.id)}
    assert "iara" not in repr(rows).lower()
