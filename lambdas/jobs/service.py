"""Scheduled jobs: each runs under a DynamoDB lease so that only one runner works at a time
(EventBridge may deliver a schedule twice, and an operator may run one by hand)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from pydantic import BaseModel

from lambdas.shared.locks import LockBusy
from lambdas.shared.observability import logger

Job = Callable[[], int]
LeaseFactory = Callable[[str], AbstractContextManager[Any]]


class JobReport(BaseModel):
    job: str
    ok: bool
    skipped: bool = False
    affected: int = 0
    duration_ms: int = 0
    error: str | None = None


class UnknownJob(ValueError):
    pass


def run_job(name: str, jobs: Mapping[str, Job], lease: LeaseFactory) -> JobReport:
    """Run ``jobs[name]`` while holding the lease ``name``; skip (not fail) if it is held."""
    if name not in jobs:
        raise UnknownJob(f"unknown job {name!r}; known: {', '.join(sorted(jobs))}")
    started = time.perf_counter()
    try:
        with lease(name):
            affected = jobs[name]()
    except LockBusy as busy:
        logger.info("job skipped: another runner holds its lease", extra={"job": name})
        return JobReport(job=name, ok=True, skipped=True, error=str(busy))
    duration_ms = int((time.perf_counter() - started) * 1000)
    logger.info("job done", extra={"job": name, "affected": affected, "ms": duration_ms})
    return JobReport(job=name, ok=True, affected=affected, duration_ms=duration_ms)
