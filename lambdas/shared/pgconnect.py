"""Connecting to PostgreSQL with retries: the one rule the API's ``Database`` and the migration
runner share.

The first attempt uses the cached credentials; every later attempt asks for them again
(``refresh=True``), because the usual reason a connect fails on a live cluster is a rotated
password. Between attempts the wait doubles, up to a cap; the attempts stop at a count, at a
time budget, or at whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg

from lambdas.shared.observability import logger

C = TypeVar("C")


@dataclass(frozen=True)
class ConnectRetry:
    """When to try again. ``budget_s``: give up rather than sleep past this many seconds from
    the first attempt (None: no time limit). ``max_attempts``: give up after this many
    (None: no count limit). At least one limit should be set."""

    max_attempts: int | None = None
    budget_s: float | None = None
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0


ONE_REFRESH: ConnectRetry = ConnectRetry(max_attempts=2, first_delay_s=0.0, max_delay_s=0.0)
"""The API's policy: one more attempt, at once, with fresh credentials (a rotated password or a
moved endpoint); anything longer would outlast the HTTP request."""


class DatabaseUnreachable(psycopg.OperationalError):
    """Every attempt failed. ``__cause__`` is the last attempt's error."""

    def __init__(self, attempts: int, last: psycopg.OperationalError) -> None:
        super().__init__(f"could not connect after {attempts} attempts: {last}")
        self.attempts = attempts
        self.last = last


def connect_with_retry(
    open_connection: Callable[[bool], C],
    retry: ConnectRetry,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> C:
    """``open_connection(refresh)`` until it returns; ``DatabaseUnreachable`` once ``retry``
    says to stop. Only ``psycopg.OperationalError`` (unreachable, refused, bad password) is
    retried; anything else is a bug and propagates at once."""
    give_up = None if retry.budget_s is None else clock() + retry.budget_s
    delay, refresh, attempt = retry.first_delay_s, False, 1
    while True:
        try:
            return open_connection(refresh)
        except psycopg.OperationalError as exc:
            out_of_attempts = retry.max_attempts is not None and attempt >= retry.max_attempts
            out_of_time = give_up is not None and clock() + delay >= give_up
            if out_of_attempts or out_of_time:
                raise DatabaseUnreachable(attempt, exc) from exc
            logger.warning(
                "database connect failed; retrying with refreshed credentials",
                extra={"attempt": attempt, "retry_in_s": delay},
            )
            if delay > 0:
                sleep(delay)
            delay = min(delay * 2, retry.max_delay_s)
            refresh, attempt = True, attempt + 1
