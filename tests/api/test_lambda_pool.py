"""The local gateway's execution environments: separate processes, as Lambda runs them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from scripts.devstack import console
from scripts.devstack.lambda_pool import FunctionPool, InvocationFailed, outage_line
from tests.support.pool_functions import DATABASE_ERRORS

HANDLER = "tests.support.pool_functions.echo"


@pytest.fixture
def pool() -> Iterator[FunctionPool]:
    environment = {**os.environ, "POOL_TEST_MARKER": "first"}
    functions = FunctionPool(HANDLER, "alquimista-test-echo", environment=environment, size=2)
    yield functions
    functions.close()


def test_an_invocation_runs_in_another_process_with_the_functions_environment(
    pool: FunctionPool,
) -> None:
    result = pool.invoke({})

    assert result["pid"] != os.getpid()
    assert result["marker"] == "first"
    assert result["function_name"] == "alquimista-test-echo"
    assert 0 < result["remaining_ms"] <= 29_000


def test_overlapping_invocations_get_separate_environments_up_to_the_pool_size(
    pool: FunctionPool,
) -> None:
    with ThreadPoolExecutor(max_workers=4) as threads:
        results = list(threads.map(lambda _: pool.invoke({"sleep_s": 0.5}), range(4)))

    assert len({r["pid"] for r in results}) == 2
    assert pool.started == 2


def test_a_warm_environment_is_reused(pool: FunctionPool) -> None:
    assert pool.invoke({})["pid"] == pool.invoke({})["pid"]


def test_a_redeploy_reaches_warm_environments(pool: FunctionPool) -> None:
    before = pool.invoke({})

    pool.redeploy({**os.environ, "POOL_TEST_MARKER": "second"})
    after = pool.invoke({})

    assert after["marker"] == "second"
    assert after["pid"] == before["pid"]


def test_a_raising_function_fails_the_invocation_and_its_environment_serves_on(
    pool: FunctionPool,
) -> None:
    with pytest.raises(InvocationFailed, match="unhandled RuntimeError"):
        pool.invoke({"raise": True})

    assert pool.invoke({})["marker"] == "first"


@pytest.fixture
def console_pool() -> Iterator[FunctionPool]:
    """A pool as `make dev` runs it: for a person's console."""
    environment = {**os.environ, console.ENV_FLAG: "1", "POOL_TEST_MARKER": "console"}
    functions = FunctionPool(HANDLER, "alquimista-test-jobs", environment=environment, size=1)
    yield functions
    functions.close()


@pytest.mark.parametrize("error", ["shutdown", "broken"])
def test_on_a_console_a_database_outage_is_one_line_not_a_traceback(
    console_pool: FunctionPool, error: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvocationFailed, match="unhandled"):
        console_pool.invoke({"database_error": error})

    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "alquimista-test-jobs" in line]
    assert lines == [f"alquimista-test-jobs: database unavailable: {DATABASE_ERRORS[error]}"]
    assert console_pool.invoke({})["marker"] == "console"  # and the environment serves on


def test_on_a_console_a_cancelled_query_keeps_its_traceback(
    console_pool: FunctionPool, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvocationFailed, match="unhandled QueryCanceled"):
        console_pool.invoke({"database_error": "cancelled"})

    assert "Traceback" in capfd.readouterr().err


def test_an_outage_line_names_only_errors_that_mean_the_database_went_away() -> None:
    assert outage_line(DATABASE_ERRORS["shutdown"]) == (
        "terminating connection due to administrator command"
    )
    assert outage_line(DATABASE_ERRORS["broken"]) is not None
    assert outage_line(DATABASE_ERRORS["cancelled"]) is None
    assert outage_line(RuntimeError("server closed the connection")) is None


def test_closing_the_pool_during_an_invocation_stops_its_environment_once() -> None:
    # Given an invocation in flight that outlasts the stop's grace (as make dev's job timer's
    # may at Ctrl-C): close kills its process, and the invoking thread, cut short, discards the
    # same environment, both stopping it at about the same time
    pool = FunctionPool(HANDLER, "alquimista-test-echo", environment=dict(os.environ), size=1)
    pool.invoke({})
    with ThreadPoolExecutor(max_workers=1) as threads:
        running = threads.submit(pool.invoke, {"sleep_s": 8})
        time.sleep(0.5)

        # When the pool closes, Then close returns and the invocation fails as crashed
        pool.close()
        with pytest.raises(InvocationFailed, match="crashed"):
            running.result(timeout=30)
    assert pool.started == 0


def test_a_crashed_environment_is_replaced(pool: FunctionPool) -> None:
    crashed_pid = pool.invoke({})["pid"]

    with pytest.raises(InvocationFailed, match="crashed"):
        pool.invoke({"exit": True})

    assert pool.invoke({})["pid"] != crashed_pid


def test_a_timed_out_invocation_ends_its_environment() -> None:
    # 5 s for the handler's call (a fresh environment's init has a limit of its own); the slow
    # call sleeps far beyond it
    functions = FunctionPool(HANDLER, "t", environment=dict(os.environ), size=1, timeout_ms=5000)
    try:
        slow_pid = functions.invoke({})["pid"]
        with pytest.raises(InvocationFailed, match="timeout"):
            functions.invoke({"sleep_s": 60})
        assert functions.invoke({})["pid"] != slow_pid
    finally:
        functions.close()


def test_a_pool_needs_at_least_one_environment() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FunctionPool(HANDLER, "t", environment={}, size=0)


def test_an_environment_whose_handler_cannot_be_imported_fails_its_init() -> None:
    functions = FunctionPool("tests.api.no_such_module.handler", "t", environment={}, size=1)
    try:
        with pytest.raises(InvocationFailed, match="init failed"):
            functions.invoke({})
        assert functions.started == 0
    finally:
        functions.close()
