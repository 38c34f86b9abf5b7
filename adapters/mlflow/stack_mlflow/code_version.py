"""The git commit a run's code came from, and whether the tree had uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stack.contract.tracking import CodeVersion


def detect_code_version(folder: Path) -> CodeVersion:
    """`CodeVersion(None, False)` outside a git checkout or without git."""
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return CodeVersion(commit=None, dirty=False)
    return CodeVersion(commit=commit or None, dirty=bool(changes))


def _git(folder: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return result.stdout.strip()
