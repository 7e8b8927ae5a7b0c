"""The test suite's throwaway cluster in RAM, and the sweep of those a killed run left."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from scripts.devstack import postgres
from scripts.devstack.postgres import EmbeddedPostgres, ram_folder, sweep_stale_clusters

PREFIX = "alquimista-test-pg-"
HOUR = 3600.0


def _cluster(folder: Path, runtime_root: Path, name: str, *, age_s: float) -> tuple[Path, Path]:
    """A data folder and its cluster as a run leaves them, ``age_s`` old (the data folder
    records the runtime root, as ``initialise`` does under a root of its own)."""
    data_dir = folder / f"{PREFIX}{name}"
    data_dir.mkdir()
    (data_dir / postgres.PASSWORD_FILE).write_text("not-a-real-one\n")
    (data_dir / postgres.RUNTIME_ROOT_FILE).write_text(f"{runtime_root}\n")
    cluster = EmbeddedPostgres(data_dir, port=1).cluster_dir
    (cluster / "pgdata").mkdir(parents=True, exist_ok=True)
    then = time.time() - age_s
    os.utime(data_dir, (then, then))
    return data_dir, cluster


def test_only_old_clusters_whose_server_is_not_running_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given, in a RAM folder, clusters left by runs: one killed long ago, one still running
    # (EmbeddedPostgres.is_running, pg_ctl status, says so), one just being set up, and a folder
    # of someone else
    folder = tmp_path / "shm"
    folder.mkdir()
    runtime_root = folder / "alquimista-embedded-postgres"
    killed, killed_cluster = _cluster(folder, runtime_root, "killed", age_s=2 * HOUR)
    running, running_cluster = _cluster(folder, runtime_root, "running", age_s=5 * HOUR)
    young, young_cluster = _cluster(folder, runtime_root, "young", age_s=60)
    theirs = folder / "someone-elses"
    theirs.mkdir()
    os.utime(theirs, (0, 0))
    monkeypatch.setattr(
        EmbeddedPostgres, "is_running", lambda server: server.cluster_dir == running_cluster
    )

    # When the suite starts and sweeps
    removed = sweep_stale_clusters(folder, PREFIX, older_than_s=HOUR)

    # Then the killed run's folder and cluster are gone, nothing else
    assert removed == [killed]
    assert not killed.exists()
    assert not killed_cluster.exists()
    for kept in (running, running_cluster, young, young_cluster, theirs):
        assert kept.exists()


def test_the_ram_folder_is_used_only_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "RAM_FOLDER", tmp_path)
    monkeypatch.setattr(postgres, "RAM_FOLDER_MIN_FREE", 1)
    assert ram_folder() == tmp_path
    monkeypatch.setattr(postgres, "RAM_FOLDER", tmp_path / "missing")
    assert ram_folder() is None


def test_a_ram_folder_too_small_for_a_run_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a RAM folder with less free space than a run needs (a container's 64 MB /dev/shm)
    monkeypatch.setattr(postgres, "RAM_FOLDER", tmp_path)
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    monkeypatch.setattr(postgres, "RAM_FOLDER_MIN_FREE", free + (1 << 30))

    # Then the run stays on disk
    assert ram_folder() is None


def test_a_cluster_given_a_runtime_root_lives_under_it_as_root(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "data", port=1, runtime_root=tmp_path / "rt")
    if os.geteuid() == 0:
        assert server.cluster_dir.parent == tmp_path / "rt" / "clusters"
    else:  # an unprivileged caller's cluster is its data folder, wherever that is
        assert server.cluster_dir == tmp_path / "data"


def test_a_data_folder_names_the_runtime_root_its_cluster_was_made_under(tmp_path: Path) -> None:
    # Given a data folder whose cluster was made under another runtime root (it records it)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / postgres.RUNTIME_ROOT_FILE).write_text(f"{tmp_path / 'rt'}\n")

    # Then a script's EmbeddedPostgres of that folder, given no root, finds the same cluster
    found = EmbeddedPostgres(data_dir, port=1)
    made = EmbeddedPostgres(data_dir, port=1, runtime_root=tmp_path / "rt")
    assert found.cluster_dir == made.cluster_dir
