"""A recipe copied into a temporary project with its own stack (free port, embedded tools)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.adapters.bentoml.conftest import free_port
from tests.support.cli import ROOT

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
