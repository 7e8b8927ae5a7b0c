"""An execution environment is stopped once, whoever asks first.

At Ctrl-C, make dev's pool closes its environments while a job's invoking thread, its call cut
short, discards the same environment: two ``stop`` calls at about the same time. Closing the pipe
twice raised OSError (EBADF) in one of them. The api tier exercises the race with real processes
(timing-dependent); here the second call is made while the first is inside ``join``."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait

from scripts.devstack.lambda_pool import ExecutionEnvironment


class HeldProcess:
    """A process whose ``join`` waits until the test lets it go."""

    def __init__(self) -> None:
        self.joining = threading.Event()
        self.release = threading.Event()
        self.kills = 0

    def join(self, timeout: float | None = None) -> None:
        self.joining.set()
        self.release.wait(10)

    def is_alive(self) -> bool:
        return False

    def kill(self) -> None:
        self.kills += 1


class Pipe:
    """The parent's end of the pipe: a second close fails as a closed descriptor does."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []
        self.closes = 0

    def send(self, message: tuple[str, ...]) -> None:
        if self.closes:
            raise OSError(9, "Bad file descriptor")
        self.sent.append(message)

    def close(self) -> None:
        self.closes += 1
        if self.closes > 1:
            raise OSError(9, "Bad file descriptor")


def _environment(process: HeldProcess, pipe: Pipe) -> ExecutionEnvironment:
    environment = object.__new__(ExecutionEnvironment)  # no worker process: its parts are fakes
    environment.process = process  # type: ignore[assignment]
    environment._conn = pipe  # type: ignore[assignment]
    environment._stopping = threading.Lock()
    environment._stopped = False
    return environment


def test_a_stop_during_another_stop_waits_for_it_and_does_nothing_more() -> None:
    # Given an environment whose first stop is waiting for its process to exit
    process, pipe = HeldProcess(), Pipe()
    environment = _environment(process, pipe)
    with ThreadPoolExecutor(max_workers=2) as threads:
        first = threads.submit(environment.stop)
        assert process.joining.wait(5)

        # When a second stop comes meanwhile
        second = threads.submit(environment.stop)

        # Then it returns only once the environment is stopped (its caller may rely on that)
        _, pending = wait([second], timeout=0.3)
        assert pending == {second}, "the second stop returned while the first was still stopping"

        # And when the process exits, both return without error, the stop message was sent and
        # the pipe closed once
        process.release.set()
        first.result(timeout=10)
        second.result(timeout=10)
    assert pipe.sent == [("stop",)]
    assert pipe.closes == 1
    assert process.kills == 0


def test_a_stop_after_a_stop_does_nothing() -> None:
    process, pipe = HeldProcess(), Pipe()
    process.release.set()
    environment = _environment(process, pipe)

    environment.stop()
    environment.stop()

    assert pipe.sent == [("stop",)]
    assert pipe.closes == 1
