"""A recipe copied into a temporary project with its own stack (free port, embedded tools)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from stack.session import StackSession
from tests.adapters.bentoml.conftest import free_port
from tests.support.cli import ROOT, mlstack

STACK = """
name: recipe-test
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
features: {{adapter: feast}}
server: {{adapter: bentoml, port: {port}, log_flush_seconds: 0.2}}
monitor: {{adapter: evidently}}
orchestrator: {{adapter: local}}
spine: {{url: "sqlite:///.mlstack/spine.db"}}
identity:
  groups:
    ml-leads: [ml-lead]
"""


def copy_recipe(name: str, folder: Path, **replace: str) -> Path:
    """recipes/<name> in `folder`, with a stack.yaml beside it; `replace` edits recipe.yaml."""
    target = folder / name
    shutil.copytree(
        ROOT / "recipes" / name, target, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    text = (target / "recipe.yaml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    (target / "recipe.yaml").write_text(text)
    (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
    return target


def run_recipe(
    folder: Path, name: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> tuple[int, str]:
    """`mlstack run NAME` in `folder`, as a user runs it: its exit code and its output."""
    done = mlstack("run", name, cwd=folder, env={**os.environ, **(env or {})}, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


@contextmanager
def endpoints_stopped(folder: Path) -> Iterator[None]:
    """Every endpoint of `folder`'s stack stopped when the block ends, however it ends."""
    try:
        yield
    finally:
        with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
            for endpoint in session.server.endpoints():
                session.server.undeploy(endpoint.name)
