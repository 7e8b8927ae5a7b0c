"""`make dev` runs the scheduled jobs a deployment schedules, so what they produce (the leads
metrics rollup, DSR deadlines, the purge) can be seen locally."""

from __future__ import annotations

from scripts.dev import DEV_JOBS
from stacks.constants import JOB_SCHEDULES

# Anchoring writes to an S3 Object Lock bucket: AWS only (`scripts/audit.py anchor --local`).
AWS_ONLY_JOBS = frozenset({"anchor_audit_heads"})


def test_make_dev_runs_every_scheduled_job_but_the_aws_only_ones() -> None:
    assert set(DEV_JOBS) == set(JOB_SCHEDULES) - AWS_ONLY_JOBS
    assert len(DEV_JOBS) == len(set(DEV_JOBS))
