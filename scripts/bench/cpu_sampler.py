"""A CPU-time sampling profiler for the in-process benchmarks: ``SIGPROF`` fires every
``interval`` seconds of this process's CPU time (user + system) and the handler records the
main thread's Python stack. Time spent in C or in the kernel is charged to the Python frame that
called it (psycopg's socket waits included, as CPU only). Unlike cProfile it adds no cost per
call, so the shares of cheap Python functions are not inflated.

    sampler = CpuSampler()
    with sampler:
        for event in events:
            handler(event, context)
    print(sampler.report(top=40))
"""

from __future__ import annotations

import signal
from collections import Counter
from types import FrameType, TracebackType


def _where(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename.split("site-packages/", 1)[-1]
    return f"{path}:{code.co_name}"


class CpuSampler:
    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.stacks: Counter[tuple[str, ...]] = Counter()

    def _sample(self, _signum: int, frame: FrameType | None) -> None:
        stack: list[str] = []
        while frame is not None:
            stack.append(_where(frame))
            frame = frame.f_back
        self.stacks[tuple(reversed(stack))] += 1

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)

    def __enter__(self) -> CpuSampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def report(self, top: int = 40) -> str:
        """The ``top`` functions by inclusive share of the samples, then by self share."""
        total = sum(self.stacks.values())
        if not total:
            return "no samples"
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        for stack, count in self.stacks.items():
            for where in set(stack):
                inclusive[where] += count
            own[stack[-1]] += count
        lines = [f"{total} samples", "inclusive:"]
        lines += [f"{100 * n / total:6.1f}% {where}" for where, n in inclusive.most_common(top)]
        lines.append("self:")
        lines += [f"{100 * n / total:6.1f}% {where}" for where, n in own.most_common(top)]
        return "\n".join(lines)
