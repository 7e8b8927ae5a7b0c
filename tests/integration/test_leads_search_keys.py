"""The leads list's text search through 059's keyed trigram index: a term's keys are among those
of every text holding it, a rare term finds exactly the substring matches, and a tenant whose id
starts like another's reads only its own leads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from lambdas.leads.models import LeadFilters
from lambdas.leads.service import LeadService
from lambdas.shared.db import Database
from lambdas.shared.secrets import DbCredentials
from tests.integration.test_leads_repositories import KEY, uow_factory
from tests.support.database import RUNTIME_ROLE, TestDatabase

# (text, a term it holds, ignoring case): words split by spaces, punctuation and LIKE's
# special characters, accents, digits
HELD = [
    ("pessoa 12 acme 12 ltda p12@example.com", "acme 12"),
    ("pessoa 12 acme 12 ltda p12@example.com", "me 12 lt"),
    ("pessoa 12 acme 12 ltda p12@example.com", "p12@exam"),
    ("maria joão são paulo comércio", "São PAULO"),
    ("maria joão são paulo comércio", "o pau"),
    ("100% orgânico ltda", "100% org"),
    ("acme_12 a\\b", "acme_12"),
    ("acme_12 a\\b", "e_12 a\\b"),
]


def _scoped(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))


def _tenant(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> uuid.UUID:
    conn.execute(
        "INSERT INTO alquimista_platform.tenants (id, slug, name) VALUES (%s, %s, %s)",
        (tenant_id, f"t-{tenant_id.hex[:12]}", "Tenant"),
    )
    return tenant_id


def _insert(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, companies: list[str], *, hours: int
) -> list[uuid.UUID]:
    """Leads with these companies, the first ``hours`` hours old and the rest older."""
    _scoped(conn, tenant_id)
    ids = []
    for n, company in enumerate(companies):
        row = conn.execute(
            """
            INSERT INTO nigredo_leads.leads (tenant_id, company, created_at)
            VALUES (%s, %s, now() - make_interval(hours => %s)) RETURNING id
            """,
            (tenant_id, company, hours + n),
        ).fetchone()
        assert row is not None
        ids.append(row["id"])
    return ids


@pytest.fixture
def database(db: TestDatabase, runtime_password: str) -> Iterator[Database]:
    creds = DbCredentials(
        host=db.server.host,
        port=db.server.port,
        dbname=db.name,
        username=RUNTIME_ROLE,
        password=runtime_password,
    )
    database = Database(lambda force: creds, connect_timeout_s=2, application_name="test")
    yield database
    database.close()


def test_a_term_s_keys_are_among_those_of_every_text_holding_it(db: TestDatabase) -> None:
    tenant = uuid.uuid4()
    with db.runtime() as conn:
        for text, term in HELD:
            assert term.lower() in text
            # the list function passes the escaped ILIKE pattern of the term
            pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            row = conn.execute(
                """
                SELECT nigredo_leads.search_keys_v1(%(tenant)s, lower(%(pattern)s)) AS term,
                       nigredo_leads.search_keys_v1(%(tenant)s, %(text)s) AS text
                """,
                {"tenant": tenant, "pattern": pattern, "text": text},
            ).fetchone()
            assert row is not None
            assert row["term"], term
            assert set(row["term"]) <= set(row["text"]), (text, term)
            assert all(key.startswith(str(tenant)[:8]) for key in row["text"])
        # no three letters or digits in a row: no keys (the search walks the rows instead)
        short = conn.execute(
            """
            SELECT nigredo_leads.search_keys_v1(%(tenant)s, '%%ab%%') AS two,
                   nigredo_leads.search_keys_v1(%(tenant)s, '%%a b.c@d%%') AS split,
                   nigredo_leads.search_keys_v1(%(tenant)s, NULL) AS missing
            """,
            {"tenant": tenant},
        ).fetchone()
    assert short == {"two": [], "split": [], "missing": []}


def test_a_rare_term_finds_exactly_the_leads_holding_it_newest_first(
    db: TestDatabase, database: Database
) -> None:
    # Given varied older companies, and more than ten pages of newer leads that hold no term
    # (so each search leaves the newest rows for the keyed trigram index)
    companies = [text for text, _ in HELD] + [
        "Acme 12",
        "ACME 120",
        "12 Acme",
        "Acme1 2",
        "Acme_12",
        "São Paulo Ltda",
        "Sao Paulo",
        "100 % orgânico",
    ]
    with db.owner() as conn:
        tenant = _tenant(conn, uuid.uuid4())
        conn.commit()
    with db.runtime() as conn:
        ids = _insert(conn, tenant, companies * 2, hours=100)
        _insert(conn, tenant, ["Zzz Qqq"] * 25, hours=1)
        conn.commit()
    leads = LeadService(uow_factory(database, tenant), suppression_key=KEY)

    def walk(term: str) -> list[uuid.UUID]:
        found, cursor = [], None
        while True:
            page = leads.page(LeadFilters(q=term), cursor=cursor, limit=2)
            found += [lead.id for lead in page.items]
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    # When each term is searched page by page; Then the pages hold exactly the leads whose
    # company holds the term, ignoring case, newest first (the ids were inserted newest first)
    terms = [term for _, term in HELD] + ["acme 12", "acme_12", "são", "e 1", "100 %", "lt", "ão"]
    for term in terms:
        expected = [i for i, company in zip(ids, companies * 2, strict=True)
                    if term.lower() in company.lower()]  # fmt: skip
        assert expected, term
        assert walk(term) == expected, term
    assert walk("acme 123") == []


def test_a_tenant_whose_id_starts_like_another_s_reads_only_its_own_leads(
    db: TestDatabase,
) -> None:
    # Given two tenants whose ids share the 8 hex digits the keys carry, holding the same texts
    prefix = uuid.uuid4().hex[:8]
    with db.owner() as conn:
        mine, theirs = (_tenant(conn, uuid.UUID(prefix + uuid.uuid4().hex[8:])) for _ in "ab")
        conn.commit()
    call = """
        SELECT nigredo_leads.list_lead_ids_v1(
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, %s, NULL, NULL, 1) AS id
    """
    with db.runtime() as conn:
        own = {
            tenant: _insert(conn, tenant, ["Acme 12 Ltda"], hours=50) for tenant in (mine, theirs)
        }
        for tenant in (mine, theirs):
            _insert(conn, tenant, ["Zzz Qqq"] * 12, hours=1)
        conn.commit()

        # When each searches a rare term (the newest ten rows hold no match)
        found = {}
        for tenant in (mine, theirs):
            _scoped(conn, tenant)
            found[tenant] = [r["id"] for r in conn.execute(call, ("%acme 12%",)).fetchall()]
            conn.rollback()

    # Then each finds its own lead only
    assert found == own


def test_a_term_with_many_older_matches_is_found_by_walking_on(
    db: TestDatabase, database: Database
) -> None:
    # Given more than fifty pages of older matches and one match among the newest ten pages'
    # worth of rows (the service asks for a page of 2 + 1)
    with db.owner() as conn:
        tenant = _tenant(conn, uuid.uuid4())
        conn.commit()
    with db.runtime() as conn:
        newest = _insert(conn, tenant, ["Zzz"] * 4 + ["Acme Nova"] + ["Zzz"] * 25, hours=1)
        older = _insert(conn, tenant, [f"Acme {n} Ltda" for n in range(160)], hours=100)
        conn.commit()
    leads = LeadService(uow_factory(database, tenant), suppression_key=KEY)

    # When it is searched page by page
    found, cursor = [], None
    while True:
        page = leads.page(LeadFilters(q="acme"), cursor=cursor, limit=2)
        found += [lead.id for lead in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    # Then every match comes once, newest first
    assert found == [newest[4], *older]
