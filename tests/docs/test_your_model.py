"""docs/your-model.md, run exactly as written: its files written, its shell blocks run in order
in an empty folder, with nothing but the installed `mlstack` on PATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack.contract.states import LifecycleState
from stack.session import StackSession
from tests.support.cli import ROOT

DOC = ROOT / "docs" / "your-model.md"
BLOCK = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


def doc_steps() -> list[tuple[str, str]]:
    """("file:PATH", text) for each file the page writes, ("sh", script) for each command block."""
    steps = []
    for block in BLOCK.finditer(DOC.read_text()):
        if block["file"]:
            steps.append((f"file:{block['file']}", block["body"]))
        elif block["lang"] == "sh":
            steps.append(("sh", block["body"]))
    return steps


def test_the_page_has_the_whole_lifecycle() -> None:
    kinds = [kind for kind, _ in doc_steps()]
    assert kinds.count("sh") >= 5 and "file:recipe/recipe.yaml" in kinds


def test_your_model_page_runs_as_written(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLSTACK_USER": "pat",
    }
    env.pop("MLSTACK_STACK", None)
    outputs = []
    try:
        for kind, text in doc_steps():
            if kind.startswith("file:"):
                target = tmp_path / kind.removeprefix("file:")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                continue
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", text],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            outputs.append(done.stdout + done.stderr)
            assert done.returncode == 0, f"{text}\n---\n{done.stdout}{done.stderr}"
    finally:
        with StackSession.open(None, base_dir=tmp_path) as session:
            for endpoint in session.server.endpoints():
                session.server.undeploy(endpoint.name)
    text = "\n".join(outputs)
    assert "'model_version': 'biopsy@1'" in text  # the first answer, from the first version
    assert "promoted: biopsy@2" in text  # the challenger held its SLOs and passed the gate
    with StackSession.open(None, base_dir=tmp_path) as session:
        assert session.registry.get_version("biopsy", 2).state is LifecycleState.SERVING
        assert session.registry.get_version("biopsy", 1).state is LifecycleState.RETIRED
        checks = session.spine.audit_entries(subject="biopsy@2", action="gate.passed")
        assert {e.payload["target"] for e in checks} >= {"approved", "canary", "serving"}


@pytest.mark.parametrize("name", ["biopsy.py", "send.py"])
def test_the_pages_python_is_clean(name: str, tmp_path: Path) -> None:
    """What readers copy passes the project's own linter."""
    [body] = [text for kind, text in doc_steps() if kind.endswith(name)]
    path = tmp_path / name
    path.write_text(body)
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ruff"),
            "check",
            "--no-cache",
            "--config",
            "pyproject.toml",
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout
