"""`mlstack llm serve|stop` drive the local generator of the optional mlstack-llm-local
distribution; without it they name the install command and touch nothing."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.cli import ROOT, run_in_process

INSTALL = "pip install 'mlstack-llm-local[models]'"


@pytest.mark.parametrize("command", ["serve", "stop"])
def test_without_the_distribution_the_command_names_what_to_install(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "stack_llm_local", None)  # as if not installed
    result = run_in_process("llm", command)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mlstack-llm-local" in result.stderr and INSTALL in result.stderr
    assert "MLSTACK_LLM_BASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".mlstack").exists()  # no stack opened for nothing


def test_serve_starts_the_generator_once_and_stop_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        served = run_in_process("llm", "serve")
        assert served.returncode == 0, served.stdout + served.stderr
        url = served.stdout.split("export MLSTACK_LLM_BASE_URL=")[1].strip()
        assert httpx.get(f"{url}/models", timeout=10).json()["data"][0]["id"] == "smollm2"
        again = run_in_process("llm", "serve")  # the running one is found, not started again
        assert again.stdout == served.stdout
    finally:
        stopped = run_in_process("llm", "stop")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped smollm2")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/models", timeout=2)
    assert run_in_process("llm", "stop").stdout.strip() == "none was running"


def test_the_core_imports_the_local_runtime_only_behind_the_llm_commands_check() -> None:
    importers = set()
    for path in (ROOT / "stack").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "stack_llm_local" for n in names):
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"stack/cli/llm_cmd.py"}
