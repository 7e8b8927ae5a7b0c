from __future__ import annotations

import psycopg

from tests.support.schema_conventions import convention_violations


def test_the_migrated_schema_keeps_every_convention(db) -> None:
    with psycopg.connect(db.owner_url) as conn:
        violations = convention_violations(conn)

    assert violations == []


def test_the_schema_has_every_table_the_platform_needs(db) -> None:
    expected = {
        "fibonacci_core": {"events", "traces", "metrics"},
        "nigredo_leads": {
            "leads", "campanhas", "interacoes", "agendamentos", "metricas_diarias",
            "blocklist", "form_submissions", "webhook_logs", "rate_limits",
        },
        "alquimista_platform": {
            "tenants", "users", "agents", "agent_activations", "permissions", "audit_logs",
            "approval_requests", "approval_decisions", "notifications", "roles",
            "role_permissions", "memberships",
        },
        "public": {
            "migrations", "commercial_requests", "trials", "payment_events", "subscriptions",
            "subscription_plans", "subnucleos", "subnucleo_agents", "tenant_subscriptions",
            "tenant_subnucleos", "tenant_agents",
        },
    }  # fmt: skip
    with db.owner() as conn:
        rows = conn.execute(
            """
            SELECT table_schema, table_name FROM information_schema.tables
            WHERE table_schema = ANY(%s)
            """,
            (list(expected),),
        ).fetchall()
        extensions = {
            r["extname"] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()
        }
    present: dict[str, set[str]] = {}
    for row in rows:
        present.setdefault(row["table_schema"], set()).add(row["table_name"])
    for schema, tables in expected.items():
        assert tables <= present.get(schema, set()), (schema, tables - present.get(schema, set()))
    assert {"vector", "pg_trgm"} <= extensions


def test_roles_are_seeded_with_nested_permissions(db) -> None:
    with db.owner() as conn:
        rows = conn.execute(
            """
            SELECT r.name, array_agg(p.code ORDER BY p.code) AS codes
            FROM alquimista_platform.roles r
            JOIN alquimista_platform.role_permissions rp ON rp.role_id = r.id
            JOIN alquimista_platform.permissions p ON p.id = rp.permission_id
            GROUP BY r.name
            """
        ).fetchall()
    codes = {row["name"]: set(row["codes"]) for row in rows}
    assert set(codes) == {"viewer", "member", "admin"}
    assert codes["viewer"] < codes["member"] < codes["admin"]
    assert "members:manage" in codes["admin"] - codes["member"]


def test_the_convention_check_names_each_offending_column(db) -> None:
    # Given a table that breaks every rule
    with db.owner() as conn:
        conn.execute(
            """
            CREATE TABLE public.bad (
                id integer PRIMARY KEY,
                tenant_id uuid REFERENCES alquimista_platform.tenants (id),
                payload json,
                seen timestamp,
                meta_data jsonb
            )
            """
        )
        conn.execute("CREATE UNIQUE INDEX bad_seen_key ON public.bad (seen)")

    with psycopg.connect(db.owner_url) as conn:
        violations = convention_violations(conn)

    joined = "\n".join(violations)
    for expected in (
        "public.bad.payload: json column",
        "public.bad.seen: timestamp without time zone",
        "public.bad.meta_data: named meta_data",
        "public.bad.tenant_id: foreign key",
        "public.bad.tenant_id: nullable",
        "public.bad.tenant_id: no index led by tenant_id",
        "public.bad.tenant_id: unique key without the tenant",
        "public.bad.tenant_id: row-level security not enabled and forced",
        "public.bad.tenant_id: no policy",
        "public.bad.id: primary key is not a single uuid column",
        "public.bad.created_at: missing",
        "public.bad.updated_at: no set_updated_at trigger",
    ):
        assert expected in joined, expected
