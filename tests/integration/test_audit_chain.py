"""The audit chain on the real PostgreSQL: golden vectors (SQL canonical JSON == rfc8785 byte
for byte), append-only enforcement, per-tenant locking, tamper detection."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import rfc8785

from lambdas.audit.repository import AuditRepository
from lambdas.shared.audit import (
    Anchor,
    AuditRow,
    AuditWriter,
    canonical_json,
    record_json,
    verify_chain,
)
from tests.support.audit import append_audit, scoped, tampering
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant

Conn = psycopg.Connection[dict[str, Any]]

GOLDEN_STRINGS = [
    "",
    "plain",
    'quote " inside',
    "back\\slash",
    "slash / stays",
    "tab\tnew\nline\rcr",
    "\b\f",
    "".join(chr(c) for c in range(1, 32)),
    "del \x7f stays raw",
    "ação çãõ 日本語",
    "emoji 😀 and 𝄞",
    "line sep \u2028 para sep \u2029",
    "<script>&'</script>",
]

GOLDEN_VALUES: list[Any] = [
    {},
    {"b": 1, "a": 2, "a_b": 3, "a0": 4, "z": [], "y": {}},
    {"agent_id": "3f0c7a1e-8f7e-4c8e-9a61-0d3c6a5b2f10", "count": -42, "ok": True, "x": None},
    {"big": 9007199254740991, "neg": -9007199254740991, "zero": 0, "f": False},
    {"nested": {"z": {"b": [1, "two", None, {"k": "v"}]}, "a": [[], [{}]]}},
    {"strings": GOLDEN_STRINGS},
    {f"k{i}": GOLDEN_STRINGS[i % len(GOLDEN_STRINGS)] for i in range(12)},
]

# A fixed row and its hashes: a reference for verifiers written in other languages
# (docs/audit.md repeats it).
FIXED_ROW = {
    "id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "tenant_id": uuid.UUID("00000000-0000-4000-8000-0000000000aa"),
    "seq": 1,
    "occurred_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    "actor_id": uuid.UUID("00000000-0000-4000-8000-0000000000bb"),
    "actor_type": "user",
    "action": "agent.activated",
    "resource_type": "agent",
    "resource_id": "sdr-prospector",
    "outcome": "success",
    "request_id": 'req "1"\n',
    "metadata": {"source": "plan", "agent_id": "ação"},
}
FIXED_PAYLOAD_HASH = "90899bbe98669aaeeaa29508d0bec8f184b797a1cfd24dc940c55875f9b9cac5"
FIXED_ROW_HASH = "380d2ef186a9eb2967da785dbace3ebc979d179bf833a72170a7dd944bdc0bb1"


@pytest.fixture
def owner(db: TestDatabase) -> Iterator[Conn]:
    with db.owner() as conn:
        yield conn


def append_many(db: TestDatabase, tenant_id: uuid.UUID, count: int) -> None:
    append_audit(db, tenant_id, count, actor_id=uuid.uuid4())


def verify_tenant(db: TestDatabase, tenant_id: uuid.UUID, *anchors: Anchor) -> Any:
    with scoped(db, tenant_id) as conn:
        return verify_chain(AuditRepository(conn, tenant_id).stream(), anchors=anchors)


def head_anchor(db: TestDatabase, tenant_id: uuid.UUID) -> Anchor:
    with scoped(db, tenant_id) as conn:
        head = AuditRepository(conn, tenant_id).head()
    assert head is not None
    return head


# ---- golden vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("text", GOLDEN_STRINGS)
def test_sql_json_strings_match_rfc8785_byte_for_byte(owner: Conn, text: str) -> None:
    row = owner.execute(
        "SELECT convert_to(alquimista_platform.audit_json_string_v1(%s), 'UTF8') AS b", (text,)
    ).fetchone()
    assert row is not None
    assert bytes(row["b"]) == rfc8785.dumps(text)


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
@pytest.mark.parametrize("value", GOLDEN_VALUES)
def test_sql_canonical_json_matches_rfc8785_byte_for_byte(
    owner: Conn, value: Any, version: str
) -> None:
    row = owner.execute(
        f"SELECT convert_to(alquimista_platform.audit_canonical_json_{version}(%s), 'UTF8') AS b",
        (psycopg.types.json.Jsonb(value),),
    ).fetchone()
    assert row is not None
    assert bytes(row["b"]) == rfc8785.dumps(value) == canonical_json(value)


# Metadata v3 (migration 041) leaves to v2, which raises: NULL from v3 where v2 refuses.
EDGE_METADATA: list[Any] = [
    {"a" * 63: 1},
    {"a" * 64: 1},
    {"_a": 1},
    {"1a": 1},
    {"a-b": 1},
    {"Agent": 1},
    {"e_mail": 1},
    {"x_e_mail_y": 1},
    {"mail": 1},
    {"user_agent": 1},
    {"my_user_agent_id": 1},
    {"agent_id": 1},
    {"names": 1, "zip": 2, "ipv4": 3, "birthdate": 4},
    {"rg_id": 1},
    {"owner_ip": 1},
    {"nested": {"ok": {"first_name": 1}}},
    {"nested": {"ok": {"fine": 1.0}}},
    {"n": 9007199254740992},
    {"n": -9007199254740991},
    {"n": 0.5},
]


@pytest.mark.parametrize("value", EDGE_METADATA)
def test_sql_canonical_json_v3_writes_what_v2_writes_and_refuses_what_it_refuses(
    owner: Conn, value: Any
) -> None:
    metadata = psycopg.types.json.Jsonb(value)
    v3 = owner.execute(
        "SELECT alquimista_platform.audit_canonical_json_v3(%s) AS t", (metadata,)
    ).fetchone()
    assert v3 is not None
    try:
        v2 = owner.execute(
            "SELECT alquimista_platform.audit_canonical_json_v2(%s) AS t", (metadata,)
        ).fetchone()
    except psycopg.errors.InvalidParameterValue:
        owner.rollback()
        assert v3["t"] is None
    else:
        assert v2 is not None
        assert v3["t"] == v2["t"]
        assert v3["t"].encode() == rfc8785.dumps(value)


@pytest.mark.parametrize("text", GOLDEN_STRINGS)
def test_sql_record_json_matches_rfc8785_and_the_python_verifier(owner: Conn, text: str) -> None:
    fields = {**FIXED_ROW, "action": text, "resource_id": text, "request_id": None}
    row = owner.execute(
        """
        SELECT convert_to(alquimista_platform.audit_record_json_v1(
            %(id)s, %(tenant_id)s, %(seq)s, %(occurred_at)s, %(actor_id)s, %(actor_type)s,
            %(action)s, %(resource_type)s, %(resource_id)s, %(outcome)s, %(request_id)s,
            sha256('x')), 'UTF8') AS b, sha256('x') AS payload
        """,
        fields,
    ).fetchone()
    assert row is not None
    audit_row = _audit_row(fields, payload=bytes(row["payload"]))
    as_dict = {
        "action": text,
        "actor_id": str(FIXED_ROW["actor_id"]),
        "actor_type": "user",
        "id": str(FIXED_ROW["id"]),
        "occurred_at": "2026-01-02T03:04:05.678901Z",
        "outcome": "success",
        "payload_hash": bytes(row["payload"]).hex(),
        "request_id": None,
        "resource_id": text,
        "resource_type": "agent",
        "seq": 1,
        "tenant_id": str(FIXED_ROW["tenant_id"]),
    }
    assert bytes(row["b"]) == record_json(audit_row) == rfc8785.dumps(as_dict)


def _audit_row(fields: dict[str, Any], *, payload: bytes, prev: bytes = bytes(32)) -> AuditRow:
    return AuditRow(
        id=fields["id"],
        tenant_id=fields["tenant_id"],
        seq=fields["seq"],
        occurred_at=fields["occurred_at"],
        actor_id=fields["actor_id"],
        actor_type=fields["actor_type"],
        action=fields["action"],
        resource_type=fields["resource_type"],
        resource_id=fields["resource_id"],
        outcome=fields["outcome"],
        request_id=fields["request_id"],
        metadata=fields.get("metadata", {}),
        prev_hash=prev,
        payload_hash=payload,
        row_hash=b"",
    )


def test_the_fixed_reference_row_hashes_to_the_documented_values(owner: Conn) -> None:
    row = owner.execute(
        """
        WITH p AS (SELECT sha256(convert_to(
            alquimista_platform.audit_canonical_json_v1(%(metadata)s), 'UTF8')) AS h)
        SELECT p.h AS payload, alquimista_platform.audit_row_hash_v1(
            '\\x0000000000000000000000000000000000000000000000000000000000000000',
            alquimista_platform.audit_record_json_v1(
                %(id)s, %(tenant_id)s, %(seq)s, %(occurred_at)s, %(actor_id)s, %(actor_type)s,
                %(action)s, %(resource_type)s, %(resource_id)s, %(outcome)s, %(request_id)s,
                p.h)) AS row_hash
        FROM p
        """,
        {**FIXED_ROW, "metadata": psycopg.types.json.Jsonb(FIXED_ROW["metadata"])},
    ).fetchone()
    assert row is not None
    assert bytes(row["payload"]).hex() == FIXED_PAYLOAD_HASH
    assert bytes(row["row_hash"]).hex() == FIXED_ROW_HASH


# ---- appending ---------------------------------------------------------------------------


def test_appends_build_a_gap_free_chain_that_verifies(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)

    append_many(db, tenant.id, 5)

    result = verify_tenant(db, tenant.id, head_anchor(db, tenant.id))
    assert (result.ok, result.checked, result.last_seq) == (True, 5, 5)


def test_a_rolled_back_transaction_leaves_no_audit_row(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),))
        AuditWriter(conn, tenant_id=tenant.id, actor_id=None).append("x.y", resource_type="x")
        conn.rollback()

    append_many(db, tenant.id, 1)

    with scoped(db, tenant.id) as conn:
        seqs = [r["seq"] for r in conn.execute("SELECT seq FROM alquimista_platform.audit_logs")]
    assert seqs == [1]


@pytest.mark.parametrize(
    ("details", "fragment"),
    [
        ({"email": "a@b.c"}, "personal data"),
        ({"owner_phone": "1"}, "personal data"),
        ({"lead": {"cpf": "123"}}, "personal data"),
        ({"items": [{"full_name": "x"}]}, "personal data"),
        ({"Agent": "x"}, "lower snake case"),
        ({"ratio": 0.5}, "integers"),
        ({"huge": 2**60}, "integers"),
    ],
)
def test_the_append_refuses_personal_or_non_canonical_metadata(
    db: TestDatabase, owner: Conn, details: dict[str, Any], fragment: str
) -> None:
    tenant = create_tenant(owner)
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),))
        writer = AuditWriter(conn, tenant_id=tenant.id, actor_id=None)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=fragment):
            writer.append("x.y", resource_type="x", details=details)


def test_an_append_for_another_tenant_than_the_scope_is_refused(
    db: TestDatabase, owner: Conn
) -> None:
    a, b = create_tenant(owner), create_tenant(owner)
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(a.id),))
        writer = AuditWriter(conn, tenant_id=b.id, actor_id=None)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="outside its tenant"):
            writer.append("x.y", resource_type="x")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE alquimista_platform.audit_logs SET action = 'forged'",
        "DELETE FROM alquimista_platform.audit_logs",
        "TRUNCATE alquimista_platform.audit_logs",
        "INSERT INTO alquimista_platform.audit_logs (tenant_id, action, resource_type, seq,"
        " prev_hash, payload_hash, row_hash) SELECT tenant_id, 'x', 'x', 99, prev_hash,"
        " payload_hash, row_hash FROM alquimista_platform.audit_logs",
        "UPDATE alquimista_platform.audit_heads SET seq = 0",
        "DELETE FROM alquimista_platform.audit_heads",
    ],
)
def test_the_runtime_role_cannot_change_the_log_directly(
    db: TestDatabase, owner: Conn, statement: str
) -> None:
    tenant = create_tenant(owner)
    append_many(db, tenant.id, 2)
    with scoped(db, tenant.id) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE alquimista_platform.audit_logs SET action = 'forged'",
        "DELETE FROM alquimista_platform.audit_logs",
        "TRUNCATE alquimista_platform.audit_logs",
    ],
)
def test_triggers_refuse_changes_even_by_the_owner(
    db: TestDatabase, owner: Conn, statement: str
) -> None:
    tenant = create_tenant(owner)
    append_many(db, tenant.id, 2)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        owner.execute(statement)


def test_fifty_concurrent_appends_for_one_tenant_give_a_gap_free_valid_chain(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    start = threading.Barrier(10)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with db.runtime() as conn:
                start.wait()
                for _ in range(5):
                    conn.execute(
                        "SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),)
                    )
                    AuditWriter(conn, tenant_id=tenant.id, actor_id=None).append(
                        "load.test", resource_type="test"
                    )
                    conn.commit()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with scoped(db, tenant.id) as conn:
        seqs = [r["seq"] for r in conn.execute("SELECT seq FROM alquimista_platform.audit_logs")]
    assert sorted(seqs) == list(range(1, 51))
    result = verify_tenant(db, tenant.id, head_anchor(db, tenant.id))
    assert (result.ok, result.checked) == (True, 50)


def test_appends_of_different_tenants_do_not_wait_on_each_other(
    db: TestDatabase, owner: Conn
) -> None:
    a, b = create_tenant(owner), create_tenant(owner)
    append_many(db, a.id, 1)
    append_many(db, b.id, 1)
    with db.runtime() as holder:
        # Given tenant A's head is locked by an open transaction
        holder.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(a.id),))
        AuditWriter(holder, tenant_id=a.id, actor_id=None).append("hold", resource_type="x")

        # When tenant B appends with a short lock timeout, Then it does not wait
        with db.runtime() as other:
            other.execute("SET lock_timeout = '300ms'")
            other.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(b.id),))
            record = AuditWriter(other, tenant_id=b.id, actor_id=None).append(
                "free", resource_type="x"
            )
            other.commit()
            assert record.seq == 2

            # and a second append for tenant A does wait (the lock the test relies on is real)
            other.execute("SET lock_timeout = '300ms'")
            other.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(a.id),))
            with pytest.raises(psycopg.errors.LockNotAvailable):
                AuditWriter(other, tenant_id=a.id, actor_id=None).append("wait", resource_type="x")
        holder.rollback()


# ---- tampering ---------------------------------------------------------------------------


def test_editing_one_field_fails_verification_at_that_seq(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)
    append_many(db, tenant.id, 6)
    with tampering(owner):
        owner.execute(
            "UPDATE alquimista_platform.audit_logs SET resource_id = 'forged'"
            " WHERE tenant_id = %s AND seq = 4",
            (tenant.id,),
        )

    result = verify_tenant(db, tenant.id)

    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "row_hash" in (result.reason or "")


def test_editing_the_metadata_fails_verification_at_that_seq(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)
    append_many(db, tenant.id, 3)
    with tampering(owner):
        owner.execute(
            "UPDATE alquimista_platform.audit_logs SET metadata = metadata || '{\"n\": 7}'"
            " WHERE tenant_id = %s AND seq = 2",
            (tenant.id,),
        )

    result = verify_tenant(db, tenant.id)

    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "payload_hash" in (result.reason or "")


def test_deleting_a_middle_row_fails_verification_at_its_seq(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)
    append_many(db, tenant.id, 5)
    with tampering(owner):
        owner.execute(
            "DELETE FROM alquimista_platform.audit_logs WHERE tenant_id = %s AND seq = 3",
            (tenant.id,),
        )

    result = verify_tenant(db, tenant.id)

    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "missing" in (result.reason or "")


def test_swapping_two_rows_fails_verification_at_the_first(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)
    append_many(db, tenant.id, 5)
    with tampering(owner):
        for old, new in ((2, -2), (3, 2), (-2, 3)):
            owner.execute(
                "ALTER TABLE alquimista_platform.audit_logs"
                " DROP CONSTRAINT IF EXISTS audit_logs_seq_positive"
            )
            owner.execute(
                "UPDATE alquimista_platform.audit_logs SET seq = %s"
                " WHERE tenant_id = %s AND seq = %s",
                (new, tenant.id, old),
            )

    result = verify_tenant(db, tenant.id)

    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_deleting_the_last_row_is_caught_only_against_an_anchor(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    append_many(db, tenant.id, 4)
    anchor = head_anchor(db, tenant.id)
    # The tamperer deletes the last row and winds the head back to row 3 as well.
    with tampering(owner):
        owner.execute(
            "DELETE FROM alquimista_platform.audit_logs WHERE tenant_id = %s AND seq = 4",
            (tenant.id,),
        )
        owner.execute(
            """
            UPDATE alquimista_platform.audit_heads AS h SET seq = 3, row_hash = l.row_hash
            FROM alquimista_platform.audit_logs AS l
            WHERE h.tenant_id = %s AND l.tenant_id = h.tenant_id AND l.seq = 3
            """,
            (tenant.id,),
        )

    assert verify_tenant(db, tenant.id, head_anchor(db, tenant.id)).ok
    result = verify_tenant(db, tenant.id, anchor)
    assert (result.ok, result.first_bad_seq, result.last_seq) == (False, 4, 3)
    assert "rows were removed" in (result.reason or "")


def test_a_rewritten_chain_is_caught_by_the_anchor_hash(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)
    append_many(db, tenant.id, 2)
    anchor = head_anchor(db, tenant.id)
    forged = Anchor(tenant.id, anchor.seq, "00" * 32, anchor.at)

    result = verify_tenant(db, tenant.id, forged)

    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "anchor" in (result.reason or "")
