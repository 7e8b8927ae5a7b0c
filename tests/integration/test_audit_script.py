"""scripts/audit.py against a real database (and moto S3 for the anchor)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from scripts import audit as script
from scripts.devstack.aws_resources import LocalResources
from tests.support.audit import append_audit, tampering
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def owner(db: TestDatabase) -> Any:
    with db.owner() as conn:
        yield conn


def test_intact_chains_exit_zero_and_say_so(
    db: TestDatabase, owner: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = create_tenant(owner), create_tenant(owner)
    append_audit(db, a.id, 3)
    append_audit(db, b.id, 2)

    status = script.main(["verify", "--database-url", db.owner_url, "--no-anchor"])

    out = capsys.readouterr().out
    assert status == 0
    assert f"{a.slug}: ok, 3 rows checked" in out
    assert f"{b.slug}: ok, 2 rows checked" in out


def test_a_broken_chain_exits_one_and_names_the_seq(
    db: TestDatabase, owner: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = create_tenant(owner), create_tenant(owner)
    append_audit(db, a.id, 4)
    append_audit(db, b.id, 1)
    with tampering(owner):
        owner.execute(
            "DELETE FROM alquimista_platform.audit_logs WHERE tenant_id = %s AND seq = 2", (a.id,)
        )

    status = script.main(["verify", "--database-url", db.owner_url, "--no-anchor"])
    only_b = script.main(
        ["verify", "--database-url", db.owner_url, "--no-anchor", "--tenant", str(b.id)]
    )

    out = capsys.readouterr().out
    assert (status, only_b) == (1, 0)
    assert f"{a.slug}: BROKEN at seq 2" in out


def test_the_anchor_written_by_the_script_catches_a_deleted_tail(
    db: TestDatabase,
    owner: Conn,
    lambda_env: LocalResources,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tenant = create_tenant(owner)
    append_audit(db, tenant.id, 3)
    bucket = ["--anchor-bucket", lambda_env.audit_anchor_bucket]
    assert script.main(["anchor", "--database-url", db.owner_url, *bucket]) == 0
    with tampering(owner):
        owner.execute(
            "DELETE FROM alquimista_platform.audit_logs WHERE tenant_id = %s AND seq = 3",
            (tenant.id,),
        )
        owner.execute(
            """
            UPDATE alquimista_platform.audit_heads AS h SET seq = 2, row_hash = l.row_hash
            FROM alquimista_platform.audit_logs AS l
            WHERE h.tenant_id = %s AND l.tenant_id = h.tenant_id AND l.seq = 2
            """,
            (tenant.id,),
        )

    status = script.main(
        ["verify", "--database-url", db.owner_url, *bucket, "--tenant", tenant.slug]
    )

    out = capsys.readouterr().out
    assert status == 1
    assert "BROKEN at seq 3" in out
    assert "anchor seq 3" in out


def test_an_unknown_tenant_is_a_usage_error(db: TestDatabase, owner: Conn) -> None:
    status = script.main(
        ["verify", "--database-url", db.owner_url, "--no-anchor", "--tenant", "nobody"]
    )

    assert status == 2


def test_help_describes_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])

    assert exit_info.value.code == 0
    assert "--tenant" in capsys.readouterr().out
