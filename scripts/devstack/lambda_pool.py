"""Execution environments for the local gateway, as Lambda runs them.

On AWS each function serves concurrent requests from many execution environments, each a
process with its own warm module state and its own database connection. Here each function
gets a small pool of worker processes (``spawn``ed, so nothing is shared with the gateway):
an invocation takes an idle environment (the most recently used, as Lambda prefers warm
ones), starts a new one while the pool is below its size, or waits for one to free up.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any, Final, cast

import psycopg

from lambdas.shared.pgconnect import DatabaseUnreachable
from scripts.devstack.context import LAMBDA_TIMEOUT_MS, LambdaContextStub

DEFAULT_POOL_SIZE: Final = 4
_STOP_GRACE_S: Final = 5.0
# An environment's init (the interpreter, the handler's imports) has a limit of its own, as on
# Lambda, and the invocation's timeout counts from the handler's call. Lambda's limit is 10 s; a
# spawned interpreter importing under coverage on a loaded 2-core machine can take longer.
INIT_TIMEOUT_S: Final = 60.0

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class InvocationFailed(Exception):
    """The function raised, crashed or timed out; ``reason`` says which (never its details)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def import_handler(dotted: str) -> Handler:
    module_name, _, attr = dotted.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attr)
    return handler


def _apply_environment(environment: Mapping[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environment)


def outage_line(exc: BaseException) -> str | None:
    """One line for an error that says the database went away; ``None`` for any other error.

    The database is gone when no connection could be made (``DatabaseUnreachable``), when the
    server ended the session (SQLSTATE class 57P: shut down, crashed, not accepting yet), or when
    the connection broke with no SQLSTATE at all. A cancelled query (57014) or any other error
    keeps its traceback: that one may be ours to fix.
    """
    if not isinstance(exc, psycopg.OperationalError):
        return None
    if not isinstance(exc, DatabaseUnreachable):
        sqlstate = exc.sqlstate
        if sqlstate is not None and not sqlstate.startswith("57P"):
            return None
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _serve(
    conn: Connection, handler_path: str, function_name: str, environment: dict[str, str]
) -> None:
    """The worker's loop: one invocation at a time, as one execution environment does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the gateway, which stops us
    _apply_environment(environment)
    handler = import_handler(handler_path)
    from scripts.devstack import console  # noqa: PLC0415

    if console.enabled():
        console.human_logs()
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "configure":
            from scripts.devstack.stack import reset_lambda_caches  # noqa: PLC0415

            _apply_environment(message[1])
            reset_lambda_caches()
            conn.send(("ok", None))
            continue
        event, timeout_ms = message[1], message[2]
        context = LambdaContextStub(
            function_name=function_name, deadline_ms=time.time() * 1000 + timeout_ms
        )
        try:
            conn.send(("ok", handler(event, context)))
        except Exception as exc:  # Lambda logs the traceback; the caller sees a 500
            line = outage_line(exc) if console.enabled() else None
            if line is not None:
                # an outage, not a bug: one line on a person's console (a job's next run retries)
                print(f"{function_name}: database unavailable: {line}", file=sys.stderr, flush=True)
            else:
                traceback.print_exc()
            conn.send(("error", type(exc).__name__))


class ExecutionEnvironment:
    """One worker process serving one function."""

    def __init__(
        self, handler_path: str, function_name: str, environment: Mapping[str, str], generation: int
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.generation = generation
        self.process = context.Process(
            target=_serve,
            args=(child, handler_path, function_name, dict(environment)),
            name=f"{function_name}-environment",
            daemon=True,
        )
        self.process.start()
        child.close()
        self._stopping = threading.Lock()
        self._stopped = False

    def wait_ready(self, timeout_s: float = INIT_TIMEOUT_S) -> None:
        """Wait for the init phase's end: the handler imported, the first invocation next."""
        try:
            if not self._conn.poll(timeout_s):
                raise InvocationFailed("init timeout")
            kind, _ = self._conn.recv()
        except (EOFError, OSError) as exc:  # the import raised: the process is gone
            raise InvocationFailed("init failed") from exc
        if kind != "ready":
            raise InvocationFailed("init failed")

    def request(self, message: tuple[Any, ...], timeout_s: float) -> Any:
        self._conn.send(message)
        if not self._conn.poll(timeout_s):
            raise InvocationFailed("timeout")
        kind, payload = self._conn.recv()
        if kind == "error":
            raise InvocationFailed(f"unhandled {payload}")
        return payload

    def stop(self, *, grace_s: float = _STOP_GRACE_S) -> None:
        """End the process and close the pipe, once: the pool's ``close`` (Ctrl-C) and the
        thread whose invocation that cut short may both get here at the same time."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))
            self.process.join(grace_s)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
            self._conn.close()


class FunctionPool:
    """Up to ``size`` execution environments of one function, created on demand."""

    def __init__(
        self,
        handler_path: str,
        function_name: str,
        *,
        environment: Mapping[str, str],
        size: int = DEFAULT_POOL_SIZE,
        timeout_ms: int = LAMBDA_TIMEOUT_MS,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one execution environment")
        self.handler_path = handler_path
        self.function_name = function_name
        self.size = size
        self.timeout_ms = timeout_ms
        self._environment = dict(environment)
        self._generation = 0
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[ExecutionEnvironment] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._live: set[ExecutionEnvironment] = set()
        self._closed = False

    @property
    def started(self) -> int:
        """How many execution environments exist now."""
        with self._lock:
            return len(self._live)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._slots:
            environment = self._take()
            try:
                result = environment.request(
                    ("invoke", event, self.timeout_ms), self.timeout_ms / 1000
                )
            except InvocationFailed as failure:
                if failure.reason == "timeout":  # Lambda ends a timed-out environment
                    self._discard(environment, grace_s=0)
                else:
                    self._idle.put(environment)
                raise
            except (EOFError, OSError) as exc:  # the process died mid-invocation
                self._discard(environment)
                raise InvocationFailed("crashed") from exc
            self._idle.put(environment)
            return cast("dict[str, Any]", result)

    def redeploy(self, environment: Mapping[str, str]) -> None:
        """A configuration update: every environment serves its next invocation with these
        variables and cold caches (settings, secrets, connection)."""
        with self._lock:
            self._environment = dict(environment)
            self._generation += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            live, self._live = list(self._live), set()
        for environment in live:
            environment.stop()

    def _take(self) -> ExecutionEnvironment:
        try:
            environment = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                if self._closed:
                    raise InvocationFailed("stopped") from None
                environment = ExecutionEnvironment(
                    self.handler_path, self.function_name, self._environment, self._generation
                )
                self._live.add(environment)
            try:
                environment.wait_ready()
            except InvocationFailed:
                self._discard(environment, grace_s=0)
                raise
            return environment
        with self._lock:
            generation, variables = self._generation, dict(self._environment)
        if environment.generation != generation:
            try:
                environment.request(("configure", variables), self.timeout_ms / 1000)
            except (InvocationFailed, EOFError, OSError):
                self._discard(environment)
                return self._take()
            environment.generation = generation
        return environment

    def _discard(
        self, environment: ExecutionEnvironment, *, grace_s: float = _STOP_GRACE_S
    ) -> None:
        with self._lock:
            self._live.discard(environment)
        environment.stop(grace_s=grace_s)
