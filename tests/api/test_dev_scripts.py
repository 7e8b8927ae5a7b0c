"""The dev scripts as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from scripts.devstack.identities import find_user
from scripts.devstack.jwt_keys import SigningKey, local_issuer
from scripts.devstack.postgres import EmbeddedPostgres, free_port

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _clean_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DB_", "MASTER_"))}
    return {**base, **extra}


def test_dev_token_prints_a_token_for_the_seeded_user(tmp_path: Path) -> None:
    result = _run(
        "scripts/dev_token.py",
        "--tenant",
        "globex",
        "--role",
        "viewer",
        "--key-dir",
        str(tmp_path),
        env=_clean_env(),
    )

    assert result.returncode == 0, result.stderr
    claims = SigningKey.load_or_create(tmp_path).verify(result.stdout.strip())
    user = find_user("globex", "viewer")
    assert claims["sub"] == str(user.sub)
    assert claims["custom:tenant_id"] == str(user.tenant.id)


def test_dev_token_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = _run(
        "scripts/dev_token.py",
        "--tenant",
        "acme",
        "--role",
        "owner",
        "--key-dir",
        str(tmp_path),
        env=_clean_env(),
    )

    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_make_dev_uses_database_url_when_set(tmp_path: Path) -> None:
    # Given a server of the user's own (a separate one: make dev manages the runtime role's
    # password, which is cluster-wide) with an empty database
    server = EmbeddedPostgres(tmp_path / "theirs", port=free_port(), ephemeral=True)
    server.start()
    try:
        with psycopg.connect(server.connection.url("postgres"), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "their_db"')
        url = server.connection.url("their_db")

        result = _run(
            "scripts/dev.py",
            "--no-serve",
            "--moto-port",
            str(free_port()),
            env=_clean_env(DATABASE_URL=url, DEV_STATE_DIR=str(tmp_path / "state")),
        )

        assert result.returncode == 0, result.stdout + result.stderr
        assert "using DATABASE_URL" in result.stdout
        with psycopg.connect(url) as conn:
            applied = conn.execute("SELECT count(*) FROM public.migrations").fetchone()
            tenants = conn.execute(
                # the dev tenants; the reserved platform tenant (migration 029) is not one
                "SELECT count(*) FROM alquimista_platform.tenants WHERE slug <> 'platform'"
            ).fetchone()
        assert tenants == (2,)
        assert applied is not None
        assert applied[0] > 0
        assert not (tmp_path / "state" / "postgres").exists(), "no embedded server of its own"
    finally:
        server.destroy()


@pytest.mark.parametrize(
    "command",
    [
        ("scripts/expire_trials.py",),
        ("scripts/migrate.py", "status", "--local"),
        ("scripts/dev_psql.py", "-c", "select 1"),
    ],
    ids=["expire_trials", "migrate-status", "psql"],
)
def test_scripts_that_need_make_dev_say_so_in_one_line_when_it_is_stopped(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # Given a state dir with a cluster that is not running, and one with nothing at all
    for state in (tmp_path / "empty", tmp_path / "stopped"):
        env = _clean_env(DEV_STATE_DIR=str(state), DEV_PG_PORT=str(free_port()))
        if state.name == "stopped":
            server = EmbeddedPostgres(state / "postgres", port=free_port(), ephemeral=True)
            server.start()
            server.stop()

        result = _run(*command, env=env)

        assert result.returncode != 0
        assert "start `make dev` first" in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_dev_reset_removes_the_database_of_dev_state_dir_only(tmp_path: Path) -> None:
    # Given two state dirs, each with a cluster
    kept, reset = tmp_path / "kept", tmp_path / "reset"
    for state in (kept, reset):
        server = EmbeddedPostgres(state / "postgres", port=free_port(), ephemeral=True)
        server.start()
        server.stop()

    # When dev-reset runs with DEV_STATE_DIR pointing at one
    result = _run("scripts/dev.py", "--reset", env=_clean_env(DEV_STATE_DIR=str(reset)))

    # Then only that one is gone
    assert result.returncode == 0, result.stderr
    assert not EmbeddedPostgres(reset / "postgres", port=1).is_initialised()
    assert EmbeddedPostgres(kept / "postgres", port=1).is_initialised()
    EmbeddedPostgres(kept / "postgres", port=1).destroy()


def test_a_token_names_the_gateways_port_as_issuer(tmp_path: Path) -> None:
    result = _run(
        "scripts/dev_token.py",
        "--tenant",
        "acme",
        "--role",
        "admin",
        env=_clean_env(DEV_STATE_DIR=str(tmp_path), DEV_API_PORT="8123"),
    )

    assert result.returncode == 0, result.stderr
    key = SigningKey.load_or_create(tmp_path, issuer=local_issuer(8123))
    assert key.verify(result.stdout.strip())["iss"] == "http://127.0.0.1:8123/local-cognito"
