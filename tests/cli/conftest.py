from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MLSTACK = Path(sys.executable).parent / "mlstack"

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(workdir: Path) -> Cli:
    """Run the installed `mlstack` command in the test's working folder."""

    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(MLSTACK), *args], cwd=workdir, capture_output=True, text=True, timeout=300
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    return run
