"""CSV imports on the real PostgreSQL and moto's S3: the upload ticket, the ingestion Lambda
applying a file all or nothing with a report naming each rejected row, bad files, duplicates
against the tenant, suppression, tenant isolation, and the operators' script."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest

from lambdas.leads.csv_import import MAX_IMPORT_BYTES
from lambdas.leads.import_handler import lambda_handler as ingest
from lambdas.leads.lgpd_repository import SuppressionRepository
from lambdas.leads.suppression import lead_digests
from lambdas.shared.runtime import reset_runtime
from scripts import import_leads
from tests.integration.conftest import World
from tests.support.database import TestDatabase
from tests.support.events import lambda_context
from tests.support.factories import TestTenant
from tests.support.leads_intake import IMPORTS_BUCKET, SUPPRESSION_KEY, call, configure_intake

HEADER = ["full_name", "email", "phone", "company", "company_tax_id", "tags"]
# Ten bad rows, each with the reason the report must give (by the line it lands on).
BAD_ROWS: list[tuple[list[str], str]] = [
    (["Sem Arroba", "sem-arroba.example.com", "", "", "", ""], "email"),
    (["Dois Arrobas", "a@@example.com", "", "", "", ""], "email"),
    (["Espaço", "ana maria@example.com", "", "", "", ""], "email"),
    (["Sem Domínio", "ana@", "", "", "", ""], "email"),
    (["Fone Curto", "", "123", "", "", ""], "phone"),
    (["Fone Letras", "", "abc-defg", "", "", ""], "phone"),
    (["CNPJ Errado", "cnpj@example.com", "", "X", "11.222.333/0001-00", ""], "company_tax_id"),
    (["Sem Contato", "", "", "Empresa", "", ""], "required"),
    (["Repetido", "lead-3@example.com", "", "", "", ""], "duplicate"),
    (["Repetido Fone", "", "+55 11 90000-0007", "", "", ""], "duplicate"),
]


@pytest.fixture
def intake(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    configure_intake(monkeypatch)
    yield world
    reset_runtime()


def _csv(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def _good(n: int) -> list[list[str]]:
    return [
        [f"Lead {i}", f"lead-{i}@example.com", f"+55 11 9{i:04d}-{i:04d}"[:19], f"Empresa {i}",
         "", "b2b;sp"]
        for i in range(n)
    ]  # fmt: skip


def _file_of_500_with_10_bad() -> tuple[bytes, dict[int, str]]:
    good = _good(490)
    good[7][2] = "+55 11 90000-0007"
    rows: list[list[str]] = []
    expected: dict[int, str] = {}
    bad = iter(BAD_ROWS)
    for i, row in enumerate(good):
        rows.append(row)
        if i % 49 == 48:
            values, reason = next(bad)
            rows.append(values)
            expected[len(rows) + 1] = reason  # the header is line 1
    return _csv(rows), expected


def _open(tenant: TestTenant, **body: Any) -> dict[str, Any]:
    opened = call("POST", "/api/leads/imports", user=tenant.user("member"), body=body)
    assert opened.status == 201, opened.body
    return dict(opened.body)


def _upload(tenant: TestTenant, import_id: str, data: bytes, *, size: int | None = None) -> Any:
    key = f"imports/{tenant.id}/{import_id}.csv"
    boto3.client("s3").put_object(Bucket=IMPORTS_BUCKET, Key=key, Body=data)
    event = {
        "Records": [
            {"s3": {"bucket": {"name": IMPORTS_BUCKET},
                    "object": {"key": key, "size": size if size is not None else len(data)}}}
        ]
    }  # fmt: skip
    return ingest(event, lambda_context("leads-import"))


def _status(tenant: TestTenant, import_id: str) -> dict[str, Any]:
    got = call("GET", f"/api/leads/imports/{import_id}", user=tenant.user("viewer"))
    assert got.status == 200, got.body
    return dict(got.body)


def _leads(owner: psycopg.Connection[Any], tenant: TestTenant) -> int:
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(tenant.id),))
    row = owner.execute("SELECT count(*) AS n FROM nigredo_leads.leads").fetchone()
    assert row is not None
    return int(row["n"])


def _reasons(report: list[dict[str, Any]]) -> dict[int, str]:
    return {row["line"]: f"{row['field']} {row['reason']}" for row in report}


def test_the_upload_ticket_is_a_presigned_post_limited_in_size(intake: World) -> None:
    ticket = _open(intake.a)

    assert ticket["fields"]["key"] == f"imports/{intake.a.id}/{ticket['import_id']}.csv"
    assert "policy" in ticket["fields"]
    assert ticket["max_bytes"] == MAX_IMPORT_BYTES
    assert _status(intake.a, ticket["import_id"])["status"] == "awaiting_upload"


def test_500_leads_with_10_bad_rows_are_refused_whole_and_the_report_names_them(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    data, expected = _file_of_500_with_10_bad()
    ticket = _open(intake.a)

    _upload(intake.a, ticket["import_id"], data)

    status = _status(intake.a, ticket["import_id"])
    assert (status["status"], status["total_rows"], status["imported_rows"]) == ("rejected", 500, 0)
    assert status["rejected_rows"] == 10
    reasons = _reasons(status["report"])
    assert sorted(reasons) == sorted(expected)
    for line, kind in expected.items():
        assert kind in reasons[line], (line, reasons[line])
    assert _leads(owner, intake.a) == 0


def test_skipping_invalid_rows_imports_the_490_good_ones_and_reports_the_10(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    data, expected = _file_of_500_with_10_bad()
    ticket = _open(intake.a, skip_invalid=True)

    _upload(intake.a, ticket["import_id"], data)
    redelivered = _upload(intake.a, ticket["import_id"], data)

    status = _status(intake.a, ticket["import_id"])
    assert (status["status"], status["imported_rows"], status["rejected_rows"]) == (
        "completed",
        490,
        10,
    )
    assert sorted(_reasons(status["report"])) == sorted(expected)
    assert redelivered == {"outcomes": ["import_already_finished"]}
    assert _leads(owner, intake.a) == 490


def test_rows_already_held_by_the_tenant_or_suppressed_are_rejected(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    first = _open(intake.a)
    _upload(intake.a, first["import_id"], _csv(_good(3)))
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(intake.a.id),))
    digests = lead_digests(SUPPRESSION_KEY.encode(), email="blocked@example.com", phone=None)
    SuppressionRepository(owner, intake.a.id).add(digests, reason="opt_out", added_by=None)
    owner.commit()
    second = _open(intake.a)

    _upload(
        intake.a,
        second["import_id"],
        _csv([["Again", "LEAD-1@example.com", "", "", "", ""],
              ["Blocked", "blocked@example.com", "", "", "", ""],
              ["New", "new@example.com", "", "", "", ""]]),
    )  # fmt: skip

    status = _status(intake.a, second["import_id"])
    reasons = _reasons(status["report"])
    assert status["status"] == "rejected"
    assert "already has this email" in reasons[2]
    assert "suppression list" in reasons[3]
    assert _leads(owner, intake.a) == 3
    # the same rows are fine for another tenant
    other = _open(intake.b)
    _upload(intake.b, other["import_id"], _csv(_good(3)))
    assert _status(intake.b, other["import_id"])["imported_rows"] == 3


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00bad", "UTF-8"),
        (_csv([["x", "a@example.com"]], header=["full_name", "email", "cpf"]), "unknown columns"),
        (_csv([["Ana", "Souza"]], header=["first", "last"]), "unknown columns"),
        (_csv([["Ana"]], header=["full_name"]), "email or a phone column"),
        (b'full_name,email\n"Ana,ana@example.com\n', "malformed CSV"),
    ],
)
def test_a_malformed_file_is_refused_whole(
    intake: World, owner: psycopg.Connection[Any], data: bytes, error: str
) -> None:
    ticket = _open(intake.a)

    _upload(intake.a, ticket["import_id"], data)

    status = _status(intake.a, ticket["import_id"])
    assert status["status"] == "rejected"
    assert error in status["error"]
    assert _leads(owner, intake.a) == 0


def test_an_oversized_file_is_refused_without_being_read(
    intake: World, owner: psycopg.Connection[Any]
) -> None:
    ticket = _open(intake.a)

    _upload(intake.a, ticket["import_id"], _csv(_good(2)), size=MAX_IMPORT_BYTES + 1)

    status = _status(intake.a, ticket["import_id"])
    assert status["status"] == "rejected"
    assert "exceeds" in status["error"]
    assert _leads(owner, intake.a) == 0


def test_another_tenants_import_is_not_found_and_viewers_cannot_import(intake: World) -> None:
    ticket = _open(intake.a)

    foreign = call("GET", f"/api/leads/imports/{ticket['import_id']}", user=intake.b.user("admin"))
    viewer = call("POST", "/api/leads/imports", user=intake.a.user("viewer"), body={})
    unknown = call("GET", f"/api/leads/imports/{uuid.uuid4()}", user=intake.a.user("admin"))
    forged = _upload(intake.b, ticket["import_id"], _csv(_good(1)))

    assert foreign.status == 404
    assert viewer.status == 403
    assert unknown.status == 404
    assert forged == {"outcomes": ["import_not_found"]}


def test_the_script_dry_run_changes_nothing_and_the_real_run_imports(
    intake: World, owner: psycopg.Connection[Any], db: TestDatabase, tmp_path, monkeypatch,
    capsys,
) -> None:  # fmt: skip
    path = tmp_path / "leads.csv"
    path.write_bytes(_csv(_good(20)))
    monkeypatch.setenv("LEADS_SUPPRESSION_KEY", SUPPRESSION_KEY)
    monkeypatch.delenv("LEADS_SUPPRESSION_SECRET_ARN")
    base = [str(path), "--tenant", intake.a.slug, "--database-url", db.runtime_url]

    dry = import_leads.main([*base, "--dry-run"])
    assert _leads(owner, intake.a) == 0
    real = import_leads.main(base)
    refused = import_leads.main(base)

    assert (dry, real, refused) == (0, 0, 1)
    assert _leads(owner, intake.a) == 20
    assert "already has this email" in capsys.readouterr().out
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(intake.a.id),))
    imports = owner.execute(
        "SELECT status FROM nigredo_leads.lead_imports ORDER BY created_at"
    ).fetchall()
    assert [row["status"] for row in imports] == ["completed", "rejected"]
