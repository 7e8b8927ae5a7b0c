from __future__ import annotations

import random

import pytest

from lambdas.outbox.decisions import MAX_BACKOFF_S, backoff_s, on_failure


@pytest.mark.parametrize(("attempt", "base"), [(1, 1), (2, 16), (3, 81), (5, 625), (7, 2401)])
def test_backoff_is_attempt_to_the_fourth_within_the_jitter(attempt: int, base: int) -> None:
    rng = random.Random(attempt)
    delays = [backoff_s(attempt, rng=rng, jitter=0.1) for _ in range(200)]

    assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
    assert max(delays) - min(delays) > base * 0.1  # the jitter spreads retries out


def test_backoff_without_jitter_is_exact_and_capped() -> None:
    rng = random.Random(0)

    assert backoff_s(4, rng=rng, jitter=0) == 256
    assert backoff_s(100, rng=rng, jitter=0) == MAX_BACKOFF_S


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        backoff_s(0, rng=random.Random(0))


def test_a_failure_retries_until_the_attempts_are_used_up() -> None:
    rng = random.Random(0)

    early = on_failure("e", attempts=2, error_code="ThrottlingException", message="slow",
                       rng=rng, max_attempts=3)  # fmt: skip
    last = on_failure("e", attempts=3, error_code="ThrottlingException", message="slow",
                      rng=rng, max_attempts=3)  # fmt: skip

    assert not early.dead
    assert 16 * 0.9 <= early.retry_after_s <= 16 * 1.1
    assert early.error == "ThrottlingException: slow"
    assert last.dead
    assert last.retry_after_s == 0


def test_a_permanent_error_is_dead_on_the_first_attempt() -> None:
    failure = on_failure(
        "e", attempts=1, error_code="MalformedDetail", message="bad", rng=random.Random(0)
    )

    assert failure.dead


def test_the_error_text_is_bounded() -> None:
    failure = on_failure("e", attempts=1, error_code="X", message="y" * 5000, rng=random.Random(0))

    assert len(failure.error) == 1000
