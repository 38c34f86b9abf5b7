"""The Orchestrator suite on Kubeflow Pipelines, run with kfp.local's subprocess runner: each
step in a process of its own, writing the shared spine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stack.config.recipe_file import Recipe
from stack.contract.roles import Role
from stack.session import StackSession
from stack.testing import OrchestratorSuite
from stack_kfp.manifest import MANIFEST


class TestKfpOrchestrator(OrchestratorSuite):
    capabilities = MANIFEST.roles[Role.ORCHESTRATOR].capabilities

    @pytest.fixture
    def orchestrator_session(self, tmp_path: Path, recipe: Recipe) -> Iterator[StackSession]:
        stack_file = tmp_path / "stack.yaml"
        stack_file.write_text(
            f"name: suite\nhome: {tmp_path / '.mlstack'}\norchestrator: {{adapter: kfp}}\n"
            f"spine: {{url: 'sqlite:///{tmp_path / 'spine.db'}'}}\n"
        )
        with StackSession.open(stack_file, recipe=recipe, base_dir=tmp_path) as session:
            yield session

    def test_compiles_to_kfp_ir_with_the_step_graph(
        self, orchestrator_session: StackSession, recipe: Recipe, tmp_path: Path
    ) -> None:
        compiler = orchestrator_session.orchestrator
        path = compiler.compile(recipe, tmp_path / "pipeline.yaml")  # type: ignore[attr-defined]
        document = yaml.safe_load(path.read_text())
        assert document["pipelineInfo"]["name"] == "suite-recipe"
        tasks = document["root"]["dag"]["tasks"]
        shown = {key: task["taskInfo"]["name"] for key, task in tasks.items()}
        upstream = {
            shown[key]: sorted(shown[dep] for dep in task.get("dependentTasks", []))
            for key, task in tasks.items()
        }
        assert upstream == {
            "start": [],
            "load": ["start"],
            "double": ["load", "start"],
            "total": ["double", "load", "start"],
            "check": ["start", "total"],
            "finish": ["check", "double", "load", "start", "total"],
        }
        assert set(document["root"]["inputDefinitions"]["parameters"]) == {"run_id", "skip"}
