"""The leads list's text search steered by each key's count (migration 064): the counts job
counts live leads per key, once per lead, above a floor, per tenant under RLS; the search
finds exactly the matches, newest first, whichever way the counts send it (the keyed lookup,
the walk, the walk after stale counts, 059's order for a tenant not counted yet), and the
counts do decide the way: a rare term reads the keyed index, a broad one does not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from lambdas.leads.models import LeadFilters
from lambdas.leads.repository import LeadRepository
from lambdas.leads.service import LeadService
from lambdas.shared.db import Database
from tests.integration.test_leads_repositories import KEY, uow_factory
from tests.integration.test_leads_search_keys import _insert, _scoped, _tenant
from tests.support.database import TestDatabase


@pytest.fixture
def database(db: TestDatabase) -> Iterator[Database]:
    database = db.lambda_database()
    yield database
    database.close()


def _new_tenant(db: TestDatabase) -> uuid.UUID:
    with db.owner() as conn:
        tenant = _tenant(conn, uuid.uuid4())
        conn.commit()
    return tenant


def _count(db: TestDatabase, tenant: uuid.UUID, *, floor: int) -> int:
    """The job's work for one tenant, as the runtime role in the tenant's scope."""
    with db.runtime() as conn:
        _scoped(conn, tenant)
        counted = LeadRepository(conn, tenant).count_search_keys(floor=floor)
        conn.commit()
    return counted


def _counts(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> dict[str, int]:
    _scoped(conn, tenant)
    rows = conn.execute("SELECT key, leads FROM nigredo_leads.search_key_counts").fetchall()
    prefix = str(tenant)[:8]
    return {row["key"].removeprefix(prefix): row["leads"] for row in rows}


def test_keys_are_counted_once_per_live_lead_above_the_floor_per_tenant(db: TestDatabase) -> None:
    # Given a tenant's live and deleted leads, and another tenant's
    mine, theirs = _new_tenant(db), _new_tenant(db)
    with db.runtime() as conn:
        _insert(conn, mine, ["Acme 12"] * 3 + ["Acme 7"] * 2 + ["Globex"], hours=1)
        _insert(conn, mine, ["Banana Ana"], hours=10)  # `ana` three times in one lead
        deleted = _insert(conn, mine, ["Acme 99"] * 4, hours=20)
        conn.execute(
            "UPDATE nigredo_leads.leads SET deleted_at = now() WHERE id = ANY(%s)", (deleted,)
        )
        _insert(conn, theirs, ["Acme 12"] * 2, hours=1)
        conn.commit()

    # When the tenant's keys are counted with a floor of 2
    counted = _count(db, mine, floor=2)

    # Then each key held by at least two live leads is counted once per lead
    with db.runtime() as conn:
        counts = _counts(conn, mine)
    assert counts.pop("") == 7  # the tenant's live leads: the mark that it was counted
    assert counted == len(counts)
    assert counts["acm"] == counts["cme"] == 5  # the deleted Acme 99s are not
    assert counts["e12"] == 3
    assert counts["me7"] == 2
    assert "glo" not in counts  # one lead: under the floor
    assert "e99" not in counts  # deleted leads only
    assert "ana" not in counts  # one lead, however often it holds the key

    # When a lead goes and the counting runs again, the rows are rewritten, not added to
    with db.runtime() as conn:
        _scoped(conn, mine)
        conn.execute(
            "UPDATE nigredo_leads.leads SET deleted_at = now()"
            " WHERE tenant_id = %s AND company = 'Acme 12'"
            " AND id = (SELECT min(id::text)::uuid FROM nigredo_leads.leads"
            "           WHERE tenant_id = %s AND company = 'Acme 12')",
            (mine, mine),
        )
        conn.commit()
    _count(db, mine, floor=2)
    with db.runtime() as conn:
        assert _counts(conn, mine)["e12"] == 2
        # and the other tenant, never counted, has no rows; nor can it read the first's
        assert _counts(conn, theirs) == {}
        _scoped(conn, theirs)
        seen = conn.execute("SELECT count(*) AS n FROM nigredo_leads.search_key_counts").fetchone()
    assert seen is not None
    assert seen["n"] == 0


def _walk(leads: LeadService, term: str, *, limit: int = 2) -> list[uuid.UUID]:
    found, cursor = [], None
    while True:
        page = leads.page(LeadFilters(q=term), cursor=cursor, limit=limit)
        found += [lead.id for lead in page.items]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _keyed_lookups(conn: psycopg.Connection[Any], tenant: uuid.UUID, term: str) -> int:
    """Scans of the keyed index one search of ``term`` (a page of 2 + 1) started."""

    def scans() -> int:
        row = conn.execute(
            "SELECT pg_stat_get_xact_numscans("
            "'nigredo_leads.leads_live_search_keys_idx'::regclass) AS scans"
        ).fetchone()
        assert row is not None
        return int(row["scans"])

    _scoped(conn, tenant)
    before = scans()
    conn.execute(
        "SELECT nigredo_leads.list_lead_ids_v2("
        " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, %s, NULL, NULL, 3)",
        (f"%{term}%",),
    ).fetchall()
    after = scans()
    conn.rollback()
    return after - before


def test_the_counts_steer_the_search_and_every_way_finds_exactly_the_matches(
    db: TestDatabase, database: Database
) -> None:
    # Given, newest first: 40 leads that hold no term, then 160 "Acme N" leads (a broad term,
    # and rarer ones such as "acme 149") and three others
    tenant = _new_tenant(db)
    companies = [f"Acme {n}" for n in range(160)] + ["Globex 1", "Globex 2", "Initech 12"]
    with db.runtime() as conn:
        _insert(conn, tenant, ["Zzz Qqq"] * 40, hours=1)
        ids = _insert(conn, tenant, companies, hours=100)
        conn.commit()
    leads = LeadService(uow_factory(database, tenant), suppression_key=KEY)
    terms = ["acme 1", "acme", "globex", "e 1", "ex 2", "acme 149", "initech 12", "zzz"]

    def expected(term: str) -> list[uuid.UUID]:
        return [i for i, company in zip(ids, companies, strict=True) if term in company.lower()]

    def check() -> None:
        for term in terms:
            if term == "zzz":
                assert len(_walk(leads, term, limit=7)) == 40
                continue
            assert _walk(leads, term) == expected(term), term

    # Not counted yet: 059's order
    check()

    # Counted (floor 2): a rare term reads the keyed index, a broad one walks without it (with
    # the table's statistics, as autovacuum keeps them, the planner takes the keyed index for
    # a key lookup rather than computing every lead's keys)
    _count(db, tenant, floor=2)
    with db.owner() as conn:
        conn.execute("ANALYZE nigredo_leads.leads")
        conn.commit()
    with db.runtime() as conn:
        counts = _counts(conn, tenant)
        assert counts["acm"] == 160
        assert counts["e14"] == 11  # "acme 14", "acme 140".."acme 149"
        assert _keyed_lookups(conn, tenant, "acme 149") == 1
        assert _keyed_lookups(conn, tenant, "initech 12") == 1  # uncounted keys: rare
        assert _keyed_lookups(conn, tenant, "acme") == 0  # 160 leads > fifty pages of 3
    check()

    # Stale counts: 300 "Acme 14x" leads newer than all (written since the count) that the
    # counts do not know of; the rare-looking term's lookup finds more than fifty pages and the
    # search walks instead
    with db.runtime() as conn:
        newer = _insert(conn, tenant, [f"Acme 14{n % 10} Nova" for n in range(300)], hours=-400)
        conn.commit()
    ids = newer + ids
    companies = [f"Acme 14{n % 10} Nova" for n in range(300)] + companies
    with db.runtime() as conn:
        assert _keyed_lookups(conn, tenant, "acme 14") == 1
    assert _walk(leads, "acme 14", limit=50) == expected("acme 14")
    check()
