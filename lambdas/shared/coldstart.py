"""What a Lambda entry module does while it is first imported (the function's cold start).

Importing a handler loads about 800 modules and leaves some 100,000 container objects that
live as long as the process. With the cyclic garbage collector running, every few hundred
allocations it walks the young objects, and now and then all of them, looking for cycles that
are almost never there: about 13 % of the import's CPU here (docs/benchmarks.md). So an entry
module imports its dependencies with the collector paused, then moves what the import built
to the permanent generation (``gc.freeze``), which later collections during invocations skip,
and resumes it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off; freeze what exists, then turn it back on
    (unless it was already off), also when the block raises."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
