"""Running the installed `mlstack` command as a user does, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MLSTACK = Path(sys.executable).parent / "mlstack"

Cli = Callable[..., subprocess.CompletedProcess[str]]


def cli_in(folder: Path) -> Cli:
    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(MLSTACK), *args], cwd=folder, capture_output=True, text=True, timeout=300
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    return run
