"""A headless Chromium (and its chromedriver) for tests that look at a page as a browser
renders it.

Debian's `chromium` and `chromium-driver` are used when present; when missing, the test
setup installs them with apt-get (as CI's machine allows: root, Debian's registry). Only
when that is impossible is the test skipped, saying why."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    return _installed(NAMES, "chromium")


def chromedriver() -> str:
    """Debian's chromedriver for the chromium above (Selenium drives the browser with it)."""
    chromium()
    return _installed(("chromedriver",), "chromium-driver")


def _installed(names: tuple[str, ...], package: str) -> str:
    """The first of `names` on PATH, else `package` installed with apt-get (root only)."""
    found = next((path for name in names if (path := shutil.which(name))), None)
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip(
            f"no {names[0]}, and apt-get cannot install it here (apt-get install {package})"
        )
    install = [apt, "install", "-y", "--no-install-recommends", package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:  # a stale package index: refresh it once
        subprocess.run([apt, "update"], capture_output=True, env=env, timeout=300)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    found = shutil.which(names[0])
    if done.returncode != 0 or found is None:
        pytest.fail(
            f"apt-get install {package} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return found


def rendered_text(page: Path, *, budget_ms: int = 15000) -> list[str]:
    """The text of `page` after its scripts ran in headless Chromium (scripts left out)."""
    dom = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    body = dom[dom.find("<body") :]
    body = re.sub(r"<script.*?</script>", "", body, flags=re.S)
    return [text.strip() for text in re.findall(r">([^<>]+)<", body) if text.strip()]
