"""The leads list's text search through 059's keyed trigram index: a term's keys are among those
of every text holding it, a rare term finds exactly the substring matches, and a tenant whose id
starts like another's reads only its own leads. The keys and the searches are checked in the
test template's C locale and in a UTF-8 one (production's is en_US.UTF-8), where accented
letters are letters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest

from lambdas.leads.models import LeadFilters
from lambdas.leads.service import LeadService
from lambdas.migrations.roles import RuntimeRole
from lambdas.migrations.runner import MigrationRunner
from lambdas.shared.db import Database
from scripts.devstack.postgres import ConnectionInfo
from tests.integration.test_leads_repositories import KEY, uow_factory
from tests.support.database import RUNTIME_ROLE, TestDatabase, cloned_database

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
    ("maria joão silva", "joão"),
    ("maria joão silva", "João S"),
    ("conceição souza", "conceição"),
    ("conceição souza", "ção"),
    ("maria joão são paulo comércio", "são paulo"),
    ("maria joão são paulo comércio", "comércio"),
    ("josé comércio ltda", "josé"),
    ("josé comércio ltda", "sé co"),
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


@pytest.fixture(scope="module")
def utf8_template(pg_server: ConnectionInfo, runtime_password: str) -> Iterator[str]:
    """A migrated database whose character classes are Unicode's (LC_CTYPE C.UTF-8)."""
    name = f"leads_utf8_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url("postgres"), autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LOCALE_PROVIDER libc"
            " LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0"
        )
    try:
        runner = MigrationRunner(
            pg_server.url(name), runtime_role=RuntimeRole(RUNTIME_ROLE, runtime_password)
        )
        report = runner.apply()
        assert report.ok, report.error
        yield name
    finally:
        with psycopg.connect(pg_server.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["C", "UTF-8"])
def locale_db(request: pytest.FixtureRequest) -> Iterator[TestDatabase]:
    """The test's database in the template's C locale, then in a UTF-8 one."""
    if request.param == "C":
        yield cast(TestDatabase, request.getfixturevalue("db"))
        return
    template = cast(str, request.getfixturevalue("utf8_template"))
    server = cast(ConnectionInfo, request.getfixturevalue("pg_server"))
    password = cast(str, request.getfixturevalue("runtime_password"))
    with cloned_database(server, password, template=template) as database:
        with database.owner() as conn:
            # the hazard is there: accented letters are word characters, as in production
            row = conn.execute("SELECT 'ã' ~ '^\\w$' AS letter").fetchone()
        assert row is not None
        assert row["letter"], "the UTF-8 database must treat accented letters as letters"
        yield database


@pytest.fixture
def database(locale_db: TestDatabase) -> Iterator[Database]:
    database = locale_db.lambda_database()
    yield database
    database.close()


def test_a_term_s_keys_are_among_those_of_every_text_holding_it(locale_db: TestDatabase) -> None:
    tenant = uuid.uuid4()
    prefix = str(tenant)[:8]
    with locale_db.runtime() as conn:
        for text, term in HELD:
            assert term.lower() in text
            # the list function passes the escaped ILIKE pattern of the term
            pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            row = conn.execute(
                """
                SELECT nigredo_leads.search_pattern_keys_v1(%(tenant)s, lower(%(pattern)s)) AS term,
                       nigredo_leads.search_keys_v1(%(tenant)s, %(text)s) AS text
                """,
                {"tenant": tenant, "pattern": pattern, "text": text},
            ).fetchone()
            assert row is not None
            assert row["term"], term
            assert set(row["term"]) <= set(row["text"]), (text, term)
            assert all(key.startswith(prefix) for key in row["text"])

        # the keys are the three-character substrings without spaces, whatever the locale;
        # a pattern's are those of its literal runs, unescaped
        def keys(function: str, value: str | None) -> set[str]:
            row = conn.execute(
                f"SELECT nigredo_leads.{function}(%s, %s) AS keys", (tenant, value)
            ).fetchone()
            assert row is not None
            return {key.removeprefix(prefix) for key in row["keys"]}

        assert keys("search_keys_v1", "joão s") == {"joã", "oão", "ãos"}
        assert keys("search_keys_v1", "a%_\\") == {"a%_", "%_\\"}
        assert keys("search_pattern_keys_v1", "%são p_ulo%") == {"são", "ãop", "ulo"}
        assert keys("search_pattern_keys_v1", "%a\\%b\\_c\\\\%") == {"a%b", "%b_", "b_c", "_c\\"}
        assert keys("search_pattern_keys_v1", "%a b.c@d%") == {"ab.", "b.c", ".c@", "c@d"}
        # no literal run of three characters (spaces aside): no keys (the search walks the rows)
        for short in ("%ab%", "%a b%", "%ab_cd%", "%a%bc%", "ab\\", "", None):
            assert keys("search_pattern_keys_v1", short) == set(), short
        assert keys("search_keys_v1", None) == set()


def test_a_rare_term_finds_exactly_the_leads_holding_it_newest_first(
    locale_db: TestDatabase, database: Database
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
        "João",
        "José da Conceição",
        "Comércio São João",
    ]
    with locale_db.owner() as conn:
        tenant = _tenant(conn, uuid.uuid4())
        conn.commit()
    with locale_db.runtime() as conn:
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
    terms = [term for _, term in HELD] + [
        "acme 12",
        "acme_12",
        "são",
        "e 1",
        "100 %",
        "lt",
        "ão",
        "joão",
        "conceição",
        "ção",
        "são joão",
        "o são",
        "ércio",
        "josé da",
    ]
    for term in terms:
        expected = [i for i, company in zip(ids, companies * 2, strict=True)
                    if term.lower() in company.lower()]  # fmt: skip
        assert expected, term
        assert walk(term) == expected, term
    assert walk("acme 123") == []


def test_a_tenant_whose_id_starts_like_another_s_reads_only_its_own_leads(
    locale_db: TestDatabase,
) -> None:
    # Given two tenants whose ids share the 8 hex digits the keys carry, holding the same texts
    prefix = uuid.uuid4().hex[:8]
    with locale_db.owner() as conn:
        mine, theirs = (_tenant(conn, uuid.UUID(prefix + uuid.uuid4().hex[8:])) for _ in "ab")
        conn.commit()
    call = """
        SELECT nigredo_leads.list_lead_ids_v1(
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, %s, NULL, NULL, 1) AS id
    """
    with locale_db.runtime() as conn:
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
    locale_db: TestDatabase, database: Database
) -> None:
    # Given more than fifty pages of older matches and one match among the newest ten pages'
    # worth of rows (the service asks for a page of 2 + 1)
    with locale_db.owner() as conn:
        tenant = _tenant(conn, uuid.uuid4())
        conn.commit()
    with locale_db.runtime() as conn:
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
