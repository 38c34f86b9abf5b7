"""The Orchestrator suite on Prefect 3, with its temporary local API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.config.recipe_file import Recipe
from stack.contract.roles import Role
from stack.session import StackSession
from stack.testing import OrchestratorSuite
from stack_prefect.manifest import MANIFEST


class TestPrefectOrchestrator(OrchestratorSuite):
    capabilities = MANIFEST.roles[Role.ORCHESTRATOR].capabilities

    @pytest.fixture
    def orchestrator_session(self, tmp_path: Path, recipe: Recipe) -> Iterator[StackSession]:
        stack_file = tmp_path / "stack.yaml"
        stack_file.write_text(
            f"name: suite\nhome: {tmp_path / '.mlstack'}\norchestrator: {{adapter: prefect}}\n"
            f"spine: {{url: 'sqlite:///{tmp_path / 'spine.db'}'}}\n"
        )
        with StackSession.open(stack_file, recipe=recipe) as session:
            yield session
