"""The one connect-with-retry rule (lambdas/shared/pgconnect.py), with a fake connection
opener and a fake clock: no database, no waiting."""

from __future__ import annotations

import psycopg
import pytest

from lambdas.shared.pgconnect import (
    ONE_REFRESH,
    ConnectRetry,
    DatabaseUnreachable,
    connect_with_retry,
)


class FakeServer:
    """Refuses the first ``failures`` connects; records each ``refresh`` flag it was given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.refreshes: list[bool] = []

    def open(self, refresh: bool) -> str:
        self.refreshes.append(refresh)
        if len(self.refreshes) <= self.failures:
            raise psycopg.OperationalError(f"refused #{len(self.refreshes)}")
        return "connection"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def test_the_first_attempt_uses_cached_credentials_and_later_ones_refresh() -> None:
    server, clock = FakeServer(failures=3), FakeClock()

    conn = connect_with_retry(server.open, ConnectRetry(max_attempts=5), sleep=clock.sleep)

    assert conn == "connection"
    assert server.refreshes == [False, True, True, True]


def test_the_wait_doubles_up_to_its_cap() -> None:
    server, clock = FakeServer(failures=5), FakeClock()
    retry = ConnectRetry(max_attempts=6, first_delay_s=0.5, max_delay_s=3.0)

    connect_with_retry(server.open, retry, sleep=clock.sleep, clock=lambda: clock.now)

    assert clock.naps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_the_api_policy_tries_once_more_at_once_then_gives_up() -> None:
    server, clock = FakeServer(failures=2), FakeClock()

    with pytest.raises(DatabaseUnreachable) as raised:
        connect_with_retry(server.open, ONE_REFRESH, sleep=clock.sleep)

    assert server.refreshes == [False, True]
    assert clock.naps == []
    assert raised.value.attempts == 2
    assert str(raised.value.last) == "refused #2"
    assert isinstance(raised.value, psycopg.OperationalError), "still maps to a 503"


def test_the_time_budget_stops_before_sleeping_past_it() -> None:
    server, clock = FakeServer(failures=100), FakeClock()
    retry = ConnectRetry(budget_s=4.0, first_delay_s=0.5, max_delay_s=10.0)

    with pytest.raises(DatabaseUnreachable) as raised:
        connect_with_retry(server.open, retry, sleep=clock.sleep, clock=lambda: clock.now)

    assert clock.naps == [0.5, 1.0, 2.0]  # a 4 s nap at t=3.5 would end past the budget
    assert raised.value.attempts == 4


def test_an_error_other_than_unreachable_is_not_retried() -> None:
    calls: list[bool] = []

    def broken(refresh: bool) -> str:
        calls.append(refresh)
        raise psycopg.ProgrammingError("a bug, not an outage")

    with pytest.raises(psycopg.ProgrammingError):
        connect_with_retry(broken, ConnectRetry(max_attempts=5), sleep=lambda _s: None)

    assert calls == [False]
