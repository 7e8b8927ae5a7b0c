"""Count the round trips a connection makes, from libpq's own protocol trace.

A round trip ends when the server answers a Sync (or a simple Query) with ReadyForQuery: the
client has to wait for that message before it can go on, however many statements it pipelined
before the Sync. The trace is libpq's, so it sees every message psycopg sends or receives.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.pq import Trace

_SQL = re.compile(r'^F\t\d+\t(?:Parse\t "[^"]*" |Query\t )"(?P<sql>.*)"', re.DOTALL)
_PREPARED = re.compile(r'^F\t\d+\tBind\t "[^"]*" "(?P<name>[^"]+)"')
# libpq prints a message's strings raw, newlines included: a message starts where a line
# starts with its direction and length
_MESSAGE_START = re.compile(r"\n(?=[FB]\t\d+\t[A-Za-z])")


@dataclass
class RoundTrips:
    """What was sent in each round trip: SQL text, or ``prepared:<name>`` for a statement
    psycopg had already prepared."""

    trips: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.trips)

    @classmethod
    def from_trace(cls, text: str) -> RoundTrips:
        trips: list[list[str]] = []
        sent: list[str] = []
        for line in _MESSAGE_START.split(text):
            if (sql := _SQL.match(line)) is not None:
                sent.append(" ".join(sql["sql"].split()))
            elif (prepared := _PREPARED.match(line)) is not None:
                sent.append(f"prepared:{prepared['name']}")
            elif line.startswith("B\t") and "\tReadyForQuery\t" in line:
                trips.append(sent)
                sent = []
        return cls(trips)


@contextmanager
def counting_round_trips(conn: psycopg.Connection[Any]) -> Iterator[RoundTrips]:
    """Trace ``conn`` inside the block; the yielded RoundTrips is filled when the block ends."""
    counted = RoundTrips()
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            yield counted
        finally:
            conn.pgconn.untrace()
            trace.seek(0)
            counted.trips = RoundTrips.from_trace(trace.read()).trips
