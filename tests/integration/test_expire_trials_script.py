from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.devstack.seed_catalog import find_subnucleo
from tests.integration.conftest import World
from tests.support.factories import create_trial

ROOT = Path(__file__).resolve().parents[2]


def test_the_script_expires_trials_once_as_the_runtime_role(world: World, owner, db) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    trial = create_trial(
        owner, world.a, subnucleo_id=find_subnucleo("marketing").id, expires_at=past
    )

    result = subprocess.run(
        [sys.executable, "scripts/expire_trials.py", "--database-url", db.runtime_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "expired 1 trial(s)"
    status = owner.execute("SELECT status FROM public.trials WHERE id = %s", (trial,)).fetchone()
    assert status["status"] == "expired"
