"""`scripts/import_leads.py --local`: the `make dev` database and suppression key, found the way
the other scripts' --local find them (scripts/devstack/local_dev.py), not dug out of moto."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from scripts import import_leads
from scripts.devstack.aws_resources import SUPPRESSION_KEY_FILE, load_or_create_suppression_key
from scripts.devstack.local_dev import DEV_DB, DevStackNotRunning
from scripts.devstack.postgres import PASSWORD_FILE, ConnectionInfo, free_port


@pytest.fixture
def make_dev_state(
    pg_server: ConnectionInfo,
    pg_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A state folder whose cluster is the tests' running server (as `make dev`'s would be)."""
    assert (pg_data_dir / PASSWORD_FILE).read_text().strip() == pg_server.password
    state = tmp_path / "state"
    state.mkdir()
    (state / "postgres").symlink_to(pg_data_dir.resolve(), target_is_directory=True)
    monkeypatch.setenv("DEV_STATE_DIR", str(state))
    monkeypatch.setenv("DEV_PG_PORT", str(pg_server.port))
    return state


def test_local_resolves_the_make_dev_database_and_its_kept_key(
    make_dev_state: Path, pg_server: ConnectionInfo
) -> None:
    # Given the key `make dev` keeps in its state folder
    kept = load_or_create_suppression_key(make_dev_state)

    url, key = import_leads.local_target()

    assert key == kept.encode()
    assert psycopg.conninfo.conninfo_to_dict(url) == psycopg.conninfo.conninfo_to_dict(
        pg_server.url(DEV_DB)
    )
    # and the URL reaches that server
    with psycopg.connect(psycopg.conninfo.make_conninfo(url, dbname="postgres")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("cluster", ["none", "stopped"])
def test_local_without_make_dev_says_so_and_touches_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cluster: str,
) -> None:
    # Given a state folder with no cluster, or one nobody listens for
    state = tmp_path / "state"
    state.mkdir()
    if cluster == "stopped":
        (state / "postgres" / "pgdata").mkdir(parents=True)
        (state / "postgres" / "pgdata" / "PG_VERSION").write_text("18\n")
    monkeypatch.setenv("DEV_STATE_DIR", str(state))
    monkeypatch.setenv("DEV_PG_PORT", str(free_port()))
    csv = tmp_path / "leads.csv"
    csv.write_text("email\nana@example.com\n")

    with pytest.raises(DevStackNotRunning):
        import_leads.local_target()
    status = import_leads.main([str(csv), "--tenant", "acme", "--local", "--dry-run"])

    assert status == 2
    assert "start `make dev` first" in capsys.readouterr().err
    assert not (state / SUPPRESSION_KEY_FILE).exists(), "no key made for a stack not there"


def test_local_and_a_database_url_are_exclusive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        import_leads.main(
            ["x.csv", "--tenant", "acme", "--local", "--database-url", "postgresql://x/y"]
        )

    assert refused.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_help_describes_local(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as shown:
        import_leads.main(["--help"])

    assert shown.value.code == 0
    text = capsys.readouterr().out
    assert "--local" in text
    assert "make dev" in text
