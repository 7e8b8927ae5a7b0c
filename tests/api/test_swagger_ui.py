"""The Swagger UI at /docs as a browser renders it (headless Chromium, Debian's package)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lambdas.shared.routes import GROUPS, ROUTES

INSTALL_HINT = "install Chromium to run this test: sudo apt-get install -y chromium"


def chromium() -> str:
    """The browser binary; a missing one fails the run in CI and is a visible skip locally."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"Chromium is required in CI: {INSTALL_HINT}")
    pytest.skip(INSTALL_HINT)


def browse(url: str, profile: Path, *extra: str) -> str:
    command = [
        chromium(),
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        *(["--no-sandbox"] if os.geteuid() == 0 else []),  # Chromium refuses root otherwise
        *extra,
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_swagger_ui_renders_every_route_groups_operations(
    gateway_url: str, tmp_path: Path
) -> None:
    # When a browser loads /docs and runs its scripts
    dom = browse(f"{gateway_url}/docs", tmp_path / "profile", "--dump-dom")

    # Then the page is no longer "Loading...": every group and every operation is listed
    assert 'class="swagger-ui' in dom
    tags = set(re.findall(r'data-tag="([^"]+)"', dom))
    assert {g if g != "health" else "ops" for g in GROUPS} <= tags
    rendered = {
        (method.upper(), path.replace("\u200b", ""))
        for method, path in re.findall(
            r'opblock-summary-method">(\w+)</span>.*?data-path="([^"]+)"', dom, flags=re.S
        )
    }
    assert {(route.method, route.path) for route in ROUTES} <= rendered


def test_a_screenshot_of_the_swagger_ui_can_be_taken(gateway_url: str, tmp_path: Path) -> None:
    shot = tmp_path / "docs.png"

    browse(
        f"{gateway_url}/docs",
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,2200",
    )

    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if target := os.environ.get("SWAGGER_SCREENSHOT"):
        shutil.copy(shot, target)
