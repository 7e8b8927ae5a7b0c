from __future__ import annotations

from lambdas.shared.migration_files import MIGRATIONS_DIR, discover
from scripts import migrate


def test_the_cli_applies_then_reports_status_as_a_table(empty_db, capsys) -> None:
    assert migrate.main(["apply", "--database-url", empty_db.owner_url]) == 0
    capsys.readouterr()

    code = migrate.main(["status", "--database-url", empty_db.owner_url])

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].split() == ["version", "file", "state"]
    rows = {line.split()[1]: line.split()[2] for line in out.splitlines()[2:] if line.strip()}
    bundled = discover(MIGRATIONS_DIR)
    assert {m.filename: "applied" for m in bundled}.items() <= rows.items()
    assert f"status: ok ({len(bundled)} applied, 0 pending" in out


def test_the_cli_exits_non_zero_when_the_run_is_refused(empty_db, tmp_path, capsys) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 2;")

    code = migrate.main(
        ["apply", "--database-url", empty_db.owner_url, "--directory", str(tmp_path)]
    )

    assert code == 1
    assert "FAILED: 001_a.sql, 001_b.sql: 2 files share version 1" in capsys.readouterr().out
