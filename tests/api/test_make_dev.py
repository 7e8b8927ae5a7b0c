"""`make dev` as a user runs it: the whole local stack in one process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest

from scripts.devstack.postgres import EmbeddedPostgres, free_port, port_is_open

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(url: str, timeout_s: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(url, timeout=6)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(data_dir) in part for part in cmdline):
            found.append(proc)
    return found


@dataclass
class DevStack:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    env: dict[str, str]
    state: Path
    lines: list[str]

    def wait_for_line(self, fragment: str, timeout_s: float = 30) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if fragment in line:
                    return line
            time.sleep(0.1)
        raise AssertionError(f"no line with {fragment!r} in:\n" + "".join(self.lines))


def _collect(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[DevStack]:
    ports = {"api": free_port(), "moto": free_port(), "pg": free_port()}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DB_", "MASTER_"))},
        "DEV_STATE_DIR": str(tmp_path),
        "DEV_API_PORT": str(ports["api"]),
        "DEV_MOTO_PORT": str(ports["moto"]),
        "DEV_PG_PORT": str(ports["pg"]),
        "DEV_JOBS_INTERVAL_S": "1",
        # a user's shell has no POWERTOOLS_LOG_LEVEL: the test session's quiet WARNING must not
        # leak into the stack whose console this test reads
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "dev.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    threading.Thread(target=_collect, args=(process.stdout, lines), daemon=True).start()
    try:
        yield DevStack(process, ports, env, tmp_path, lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        EmbeddedPostgres(tmp_path / "postgres", port=ports["pg"]).stop(mode="immediate")


_TENANT_SLUGS = (
    "select slug from alquimista_platform.tenants where slug in ('acme', 'globex') order by slug"
)


def test_make_dev_serves_survives_a_database_outage_and_stops_cleanly(
    dev_stack: DevStack,
) -> None:
    process, ports, state = dev_stack.process, dev_stack.ports, dev_stack.state
    base = f"http://127.0.0.1:{ports['api']}"

    # Given make dev is up, its scheduled jobs running
    try:
        assert _wait_for(f"{base}/health").status_code == 200
    except httpx.TransportError as exc:
        raise AssertionError("make dev did not serve:\n" + "".join(dev_stack.lines)) from exc
    assert "'ok': True" in dev_stack.wait_for_line("scheduled job: {'job': 'expire_trials'")

    # acme's admin invites a user by e-mail: the account lands in the stack's moto user pool
    token = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "dev_token.py"),
            "--tenant",
            "acme",
            "--role",
            "admin",
        ],
        cwd=ROOT,
        env=dev_stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    invited = httpx.post(
        f"{base}/api/members/invitations",
        json={"email": "invitee@acme.example.com", "role": "member"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["account_created"] is True

    # a second one refuses to start, clearly
    second = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev.py")],
        cwd=ROOT,
        env=dev_stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert "already running" in second.stderr

    # `make psql` opens the same database as its owner
    psql = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev_psql.py"), "-tAc", _TENANT_SLUGS],
        cwd=ROOT,
        env=dev_stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert psql.returncode == 0, psql.stderr
    assert psql.stdout.split() == ["acme", "globex"]

    # When PostgreSQL stops, health says so within 5 s, and recovers once it is back
    pg = EmbeddedPostgres(state / "postgres", port=ports["pg"])
    pg.stop()
    started = time.monotonic()
    down = httpx.get(f"{base}/health", timeout=10)
    assert down.status_code == 503
    assert down.json()["db_status"] == "unreachable"
    assert down.json()["migrations"]["state"] == "unknown"
    assert time.monotonic() - started < 5
    pg.start()
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200

    # Ctrl-C stops everything: no PostgreSQL, moto or gateway left behind
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    output = "".join(dev_stack.lines)
    assert process.returncode == 0, output
    assert "Alquimista local API on" in output
    # the console is for people: short lines, no JSON log documents, no metrics warnings
    assert "INFO  migrations apply:" in output
    assert '{"level"' not in output
    assert "No application metrics" not in output
    assert "Traceback" not in output
    assert not _postgres_processes(pg.pgdata)
    assert not port_is_open("127.0.0.1", ports["moto"])
    assert not port_is_open("127.0.0.1", ports["api"])
    assert not port_is_open("127.0.0.1", ports["pg"])
