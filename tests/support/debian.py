"""Debian packages a test needs (chromium, prometheus), installed by the test itself when
missing, as CI's machine allows (root, Debian's registry).

pytest-xdist runs several workers at once, and two `apt-get install`s at once fail on
dpkg's lock ("Could not get lock /var/lib/dpkg/lock-frontend"): installs from this suite
take a file lock first, one at a time across workers, and look again once they hold it
(another worker may have installed the package meanwhile); apt-get itself waits for any
other holder of dpkg's lock (`DPkg::Lock::Timeout`, apt >= 1.9.11). A test is skipped only
when nothing can install the package (not root, no apt-get); a failed install fails it,
saying why."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

#: Seconds apt-get waits for dpkg's lock held by another process (unattended upgrades).
LOCK_WAIT_SECONDS = 600

#: The lock this suite's installs take, shared by every worker on the machine.
INSTALL_LOCK = Path(tempfile.gettempdir()) / "mlstack-tests-apt.lock"


def installed(names: tuple[str, ...], package: str) -> str:
    """The path of the first of `names` on PATH, installing Debian's `package` when none is.
    Skips when it cannot be installed here (not root, no apt-get); fails when apt-get fails."""
    if found := _which(names):
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip(
            f"no {names[0]}, and apt-get cannot install it here (apt-get install {package})"
        )
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if found := _which(names):  # another worker installed it while this one waited
            return found
        done = _apt(apt, "install", "-y", "--no-install-recommends", package)
        if done.returncode != 0:  # a stale package index: refresh it once
            _apt(apt, "update")
            done = _apt(apt, "install", "-y", "--no-install-recommends", package)
    found = _which(names)
    if done.returncode != 0 or found is None:
        pytest.fail(
            f"apt-get install {package} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return found


def _which(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def _apt(apt: str, *args: str) -> subprocess.CompletedProcess[str]:
    wait = f"DPkg::Lock::Timeout={LOCK_WAIT_SECONDS}"
    return subprocess.run(
        [apt, "-o", wait, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=LOCK_WAIT_SECONDS + 600,
    )
