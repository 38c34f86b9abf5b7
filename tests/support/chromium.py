"""A headless Chromium (and its chromedriver) for tests that look at a page as a browser
renders it.

Debian's `chromium` and `chromium-driver` are used when present; when missing, the test
setup installs them (tests/support/debian.py). Only when that is impossible is the test
skipped, saying why."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.debian import installed

NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    return installed(NAMES, "chromium")


def chromedriver() -> str:
    """Debian's chromedriver for the chromium above (Selenium drives the browser with it)."""
    chromium()
    return installed(("chromedriver",), "chromium-driver")


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
