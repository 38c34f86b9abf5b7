"""The Orchestrator suite on ZenML's default local stack, its config in a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.config.recipe_file import Recipe
from stack.contract.roles import Role
from stack.session import StackSession
from stack.testing import OrchestratorSuite
from stack_zenml.manifest import MANIFEST


@pytest.fixture(scope="module", autouse=True)
def zenml_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One ZenML store for this module (ZenML reads its config path once per process)."""
    saved = os.environ.get("ZENML_CONFIG_PATH")
    os.environ["ZENML_CONFIG_PATH"] = str(tmp_path_factory.mktemp("zenml"))
    yield
    if saved is None:
        os.environ.pop("ZENML_CONFIG_PATH", None)
    else:
        os.environ["ZENML_CONFIG_PATH"] = saved


class TestZenmlOrchestrator(OrchestratorSuite):
    capabilities = MANIFEST.roles[Role.ORCHESTRATOR].capabilities

    @pytest.fixture
    def orchestrator_session(self, tmp_path: Path, recipe: Recipe) -> Iterator[StackSession]:
        stack_file = tmp_path / "stack.yaml"
        stack_file.write_text(
            f"name: suite\nhome: {tmp_path / '.mlstack'}\norchestrator: {{adapter: zenml}}\n"
            f"spine: {{url: 'sqlite:///{tmp_path / 'spine.db'}'}}\n"
        )
        with StackSession.open(stack_file, recipe=recipe, base_dir=tmp_path) as session:
            yield session
