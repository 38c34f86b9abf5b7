"""The stack's `home` folder (`.mlstack/` by default): checked by `mlstack stack validate`
without writing, created by the session before an adapter keeps a file there."""

from __future__ import annotations

import os
from pathlib import Path

from stack.errors import StackError


def home_problem(path: Path) -> str | None:
    """Why the folder `path` cannot be used or created, or None; writes nothing (a folder
    a permission check allows may still refuse, as under /proc: `create_home` says so)."""
    if path.exists():
        return None if path.is_dir() else "a file, not a folder"
    ancestor = next((p for p in path.parents if p.exists()), None)
    if ancestor is None:
        return None
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create a folder in {ancestor} (permission denied)"
    return None


def refuse_home(path: Path, source: Path | None, problem: str | None = None) -> None:
    """Raise StackError naming the stack file's `home` field and `path` when `problem` (by
    default `home_problem`'s) says it cannot be used; writes nothing."""
    problem = problem or home_problem(path)
    if problem is not None:
        where = f"{source}: " if source else ""
        raise StackError(
            f"{where}home: {path}: {problem}; set `home:` to a folder mlstack may write"
        )


def create_home(path: Path, source: Path | None) -> None:
    """Create the folder `path` (and its parents) unless it is there. Raises StackError
    naming the stack file's `home` field and the path when it cannot be."""
    refuse_home(path, source)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        refuse_home(path, source, f"cannot create it ({exc.strerror or exc})")
