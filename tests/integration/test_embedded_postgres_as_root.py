"""As root, the embedded PostgreSQL runs as its system user without opening anyone's folders."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from scripts.devstack.postgres import RUNTIME_ROOT, EmbeddedPostgres, free_port

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root hands PostgreSQL over"
)


@pytest.fixture
def private_home() -> Iterator[Path]:
    """A folder like /root: mode 700, with a checkout two levels down."""
    home = Path(tempfile.mkdtemp(prefix="private-home-"))
    home.chmod(0o700)
    try:
        yield home
    finally:
        EmbeddedPostgres(home / "work" / "checkout" / ".local" / "postgres", port=1).destroy()
        for path in home.rglob("*"):
            path.chmod(0o700) if path.is_dir() else None
        import shutil  # noqa: PLC0415

        shutil.rmtree(home, ignore_errors=True)


def _modes(paths: list[Path]) -> dict[Path, int]:
    return {path: stat.S_IMODE(path.stat().st_mode) for path in paths}


def test_a_checkout_in_a_private_folder_runs_postgres_and_no_folder_is_opened(
    private_home: Path,
) -> None:
    # Given a checkout under a mode-700 home, its folders private too
    checkout = private_home / "work" / "checkout"
    checkout.mkdir(parents=True)
    (private_home / "work").chmod(0o700)
    checkout.chmod(0o750)
    data_dir = checkout / ".local" / "postgres"
    watched = [private_home, private_home / "work", checkout, *private_home.parents]
    before = _modes(watched)

    # When the embedded server is initialised, started, queried and stopped as root
    server = EmbeddedPostgres(data_dir, port=free_port(), ephemeral=True)
    server.start()
    try:
        with psycopg.connect(server.connection.url("postgres")) as conn:
            user = conn.execute("SELECT current_setting('data_directory')").fetchone()
    finally:
        server.stop()

    # Then it ran from the system user's own folder, and no folder's mode changed
    assert user is not None
    assert Path(user[0]).is_relative_to(RUNTIME_ROOT)
    assert _modes(watched) == before
    assert stat.S_IMODE(private_home.stat().st_mode) == 0o700
    assert (data_dir / "superuser.password").exists()  # the secret stays with the checkout


def test_a_cluster_whose_data_folder_was_deleted_is_started_afresh(private_home: Path) -> None:
    data_dir = private_home / "work" / "checkout" / ".local" / "postgres"
    first = EmbeddedPostgres(data_dir, port=free_port(), ephemeral=True)
    first.start()
    first.stop()
    import shutil  # noqa: PLC0415

    shutil.rmtree(data_dir)  # what `rm -rf .local` does; the cluster stays behind

    again = EmbeddedPostgres(data_dir, port=free_port(), ephemeral=True)
    again.start()
    try:
        with psycopg.connect(again.connection.url("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        again.stop()
