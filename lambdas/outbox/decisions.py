"""What happens to an event after a failed publish: pure decisions, tested without a database.

A failure backs off ``attempt⁴`` seconds (1 s, 16 s, 81 s, 256 s, 625 s, ...) with ±``jitter``
of that spread at random so that a burst of failures does not retry in lockstep, capped at
``MAX_BACKOFF_S``; after ``max_attempts`` claims, or on an error no retry can fix, it is dead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

MAX_ATTEMPTS: Final = 8
MAX_BACKOFF_S: Final = 3600.0
JITTER: Final = 0.1
# EventBridge's per-entry limit on an event's size.
MAX_ENTRY_BYTES: Final = 256 * 1024

# Entry errors that the same request will hit again, however long the relay waits.
PERMANENT_ERRORS: Final = frozenset({"MalformedDetail", "ValidationException", "EntryTooLarge"})


@dataclass(frozen=True)
class Failure:
    """A failed publish of one event, as the relay marks it."""

    event_id: str
    error: str
    retry_after_s: float
    dead: bool


def backoff_s(attempt: int, *, rng: random.Random, jitter: float = JITTER) -> float:
    """Seconds before retry number ``attempt`` (1-based): attempt⁴ ± jitter, capped."""
    if attempt < 1:
        raise ValueError("attempts start at 1")
    base = min(float(attempt**4), MAX_BACKOFF_S)
    return max(0.0, base * (1 + rng.uniform(-jitter, jitter)))


def on_failure(
    event_id: str,
    *,
    attempts: int,
    error_code: str,
    message: str,
    rng: random.Random,
    max_attempts: int = MAX_ATTEMPTS,
) -> Failure:
    """The event's next state: retry later, or dead when attempts are used up or the error is
    permanent. ``attempts`` counts the claim that just failed."""
    dead = attempts >= max_attempts or error_code in PERMANENT_ERRORS
    return Failure(
        event_id=event_id,
        error=f"{error_code}: {message}"[:1000],
        retry_after_s=0.0 if dead else backoff_s(attempts, rng=rng),
        dead=dead,
    )
