"""Fixtures shared by every tier.

- ``pg_server``: one embedded PostgreSQL for the whole run (ephemeral, fsync off).
- ``template_db``: migrated once per run; ``db`` clones it for each test.
- ``aws``: moto's ``mock_aws`` with local credentials; ``lambda_env`` points the Lambdas'
  settings at the test's database through secrets created in moto.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import moto.cognitoidp.models as moto_cognito
import pytest
from joserfc import jwk
from moto import mock_aws
from moto.core.config import DefaultConfig

from scripts.devstack.aws_resources import LocalResources, provision
from scripts.devstack.postgres import (
    ConnectionInfo,
    EmbeddedPostgres,
    free_port,
    ram_folder,
    sweep_stale_clusters,
)
from scripts.devstack.stack import LOCAL_AWS_ENV, QUIET_POWERTOOLS_ENV, reset_lambda_caches
from tests.support.database import (
    TestDatabase,
    build_template,
    cloned_database,
    new_runtime_password,
)

os.environ.update(QUIET_POWERTOOLS_ENV)
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

# moto keeps the boto3 session of the test process across mocks: each new session would read
# every service model's JSON again (most of what provisioning cost a test). The credentials it
# holds are moto's fake ones, set before any client exists (LOCAL_AWS_ENV).
MOCK_CONFIG: DefaultConfig = {"core": {"reset_boto3_session": False}}


@functools.cache
def _moto_cognito_key(jwks: str) -> Any:
    return jwk.RSAKey.import_key(json.loads(jwks))


# moto's Cognito parses (and so validates, a second of CPU) its one bundled RSA key for every
# user pool it creates; every pool gets the same key, so it is parsed once per run.
moto_cognito.jwk = SimpleNamespace(  # type: ignore[attr-defined,assignment]
    RSAKey=SimpleNamespace(import_key=lambda data: _moto_cognito_key(json.dumps(data)))
)


_CLIENT_ENVIRONMENT = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID")
_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()
_new_client: Callable[..., Any] = boto3.client


def _cached_client(service_name: str, *args: Any, **kwargs: Any) -> Any:
    """``boto3.client`` with the clients kept for the run. A test's provisioning and its
    functions' composition roots (reset for every test, as a cold start) built ~15 clients a
    test, 10-40 ms of CPU each. A client holds no AWS state: moto answers it at send time, in
    whichever mock is active, so one client per service, endpoint, region and credentials is
    what a new one would be. Calls with positional arguments or unhashable options (a
    ``Config``) get a new client, as before."""
    if args:
        return _new_client(service_name, *args, **kwargs)
    try:
        key = (
            service_name,
            tuple(sorted(kwargs.items())),
            *(os.environ.get(name) for name in _CLIENT_ENVIRONMENT),
        )
        hash(key)
    except TypeError:
        return _new_client(service_name, **kwargs)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_client(service_name, **kwargs)
    return client


boto3.client = _cached_client


# The run's throwaway server keeps its files in RAM where the machine has a RAM folder: each
# test clones the migrated template (CREATE DATABASE, some 700 relation files), which took
# 400-650 ms on this project's ext4 disk in its slow hours and 17-27 ms in /dev/shm.
TEST_CLUSTER_PREFIX = "alquimista-test-pg-"


@pytest.fixture(scope="session")
def pg_ram_folder() -> Path | None:
    """The RAM folder the run's server uses, decided once (None: on disk)."""
    return ram_folder()


@pytest.fixture(scope="session")
def pg_data_dir(tmp_path_factory: pytest.TempPathFactory, pg_ram_folder: Path | None) -> Path:
    """The data folder of the run's server (its superuser password; the cluster itself too
    unless we are root)."""
    if pg_ram_folder is None:
        return tmp_path_factory.mktemp("embedded-postgres")
    sweep_stale_clusters(pg_ram_folder, TEST_CLUSTER_PREFIX)
    return Path(tempfile.mkdtemp(prefix=TEST_CLUSTER_PREFIX, dir=pg_ram_folder))


@pytest.fixture(scope="session")
def pg_server(pg_data_dir: Path, pg_ram_folder: Path | None) -> Iterator[ConnectionInfo]:
    # as root, the cluster goes under a runtime root in the same RAM folder (the data folder
    # records it); the binaries stay in RUNTIME_ROOT on disk
    runtime_root = pg_ram_folder / "alquimista-embedded-postgres" if pg_ram_folder else None
    server = EmbeddedPostgres(
        pg_data_dir, port=free_port(), ephemeral=True, runtime_root=runtime_root
    )
    server.start()
    try:
        yield server.connection
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def runtime_password() -> str:
    return new_runtime_password()


@pytest.fixture(scope="session")
def template_db(pg_server: ConnectionInfo, runtime_password: str) -> ConnectionInfo:
    build_template(pg_server, runtime_password)
    return pg_server


@pytest.fixture
def db(template_db: ConnectionInfo, runtime_password: str) -> Iterator[TestDatabase]:
    with cloned_database(template_db, runtime_password) as database:
        yield database


@pytest.fixture
def empty_db(pg_server: ConnectionInfo, runtime_password: str) -> Iterator[TestDatabase]:
    """A database with nothing in it (no ledger, no schema)."""
    with cloned_database(pg_server, runtime_password, template=None) as database:
        yield database


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in LOCAL_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config=MOCK_CONFIG):
        reset_lambda_caches()
        yield
    reset_lambda_caches()


@pytest.fixture
def lambda_env(
    aws: None, db: TestDatabase, monkeypatch: pytest.MonkeyPatch, runtime_password: str
) -> Iterator[LocalResources]:
    """Secrets and tables in moto, and the Lambda environment pointing at this test's database."""
    resources = provision("dev", db.server, dbname=db.name, runtime_password=runtime_password)
    for name, value in resources.lambda_environment("dev").items():
        monkeypatch.setenv(name, value)
    reset_lambda_caches()
    yield resources
    reset_lambda_caches()


# Tiers whose test process runs none of lambdas/ (coverage's source): the api tier calls the
# functions over HTTP in the gateway's execution environments, which coverage measures in their
# own processes; the infrastructure tier synthesizes the stacks. Coverage's tracer costs their
# Python (hypothesis and schemathesis drawing cases, httpx, jsii) about +55 % CPU for nothing,
# so it is paused in their test process for each of their tests.
_UNTRACED_TIERS: frozenset[str] = frozenset({"api", "infrastructure"})
_TESTS_DIR = Path(__file__).parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    tracer = _coverage_to_pause(item)
    if tracer is None:
        return (yield)
    tracer.stop()
    try:
        return (yield)
    finally:
        tracer.start()


def _coverage_to_pause(item: pytest.Item) -> Any:
    if "coverage" not in sys.modules:  # not under `coverage run` (make test is)
        return None
    try:
        tier = item.path.relative_to(_TESTS_DIR).parts[0]
    except ValueError:
        return None
    if tier not in _UNTRACED_TIERS:
        return None
    import coverage  # noqa: PLC0415

    return coverage.Coverage.current()


_ended = [0]  # tests ended in this process (under xdist: reported to the controller)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's end, once: its call, or the setup that failed or skipped it."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _ended[0] += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail a run that ended fewer tests than it collected. Under xdist (``make test``) a
    worker shut down while it still runs tests loses them without a failure; that happened
    with ``--dist loadgroup``, whose bookkeeping is by node id, and schemathesis' tests share
    theirs. Only the process that reports (the controller, or a run without workers) checks."""
    if hasattr(session.config, "workerinput") or session.config.option.collectonly:
        return
    if session.shouldfail or session.shouldstop or session.testsfailed:
        return
    if session.testscollected and _ended[0] < session.testscollected:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            lost = session.testscollected - _ended[0]
            reporter.write_line(f"{lost} collected tests never ran", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
