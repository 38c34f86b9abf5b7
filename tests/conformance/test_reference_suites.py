"""Each role suite passes on a correct implementation: the memory references and, for the
Orchestrator, the real local orchestrator of the core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stack.config.recipe_file import Recipe
from stack.contract import LifecycleState, ModelVersion
from stack.contract.capabilities import ServerCapability, TrackerCapability
from stack.contract.roles import Role
from stack.orchestration.manifest import MANIFEST as LOCAL_MANIFEST
from stack.plugins.manifest import AdapterContext
from stack.plugins.registry import AdapterRegistry
from stack.session import StackSession
from stack.testing import (
    FeatureStoreSuite,
    MonitorSuite,
    OrchestratorSuite,
    RegistrySuite,
    ServerSuite,
    TrackerSuite,
)
from tests.support.memory import (
    ListFrames,
    MemoryFeatureStore,
    MemoryMonitor,
    MemoryRegistry,
    MemoryServer,
    MemoryTracker,
)


def context(tmp_path: Path) -> AdapterContext:
    return AdapterContext(home=tmp_path / ".mlstack", base_dir=tmp_path)


class TestMemoryTracker(TrackerSuite):
    capabilities = frozenset({TrackerCapability.ARTIFACTS, TrackerCapability.DATASETS})

    @pytest.fixture
    def tracker(self, tmp_path: Path) -> MemoryTracker:
        return MemoryTracker(None, context(tmp_path))


class TestMemoryRegistry(RegistrySuite):
    @pytest.fixture
    def registry(self, tmp_path: Path) -> MemoryRegistry:
        return MemoryRegistry(None, context(tmp_path))


class TestMemoryFeatureStore(FeatureStoreSuite):
    @pytest.fixture
    def feature_store(self, tmp_path: Path) -> MemoryFeatureStore:
        return MemoryFeatureStore(None, context(tmp_path))

    @pytest.fixture
    def frames(self) -> ListFrames:
        return ListFrames()


class TestMemoryServer(ServerSuite):
    capabilities = frozenset({ServerCapability.CANARY, ServerCapability.SHADOW})

    @pytest.fixture
    def server(self, tmp_path: Path) -> MemoryServer:
        return MemoryServer(None, context(tmp_path))

    @pytest.fixture
    def versions(self) -> list[ModelVersion]:
        return [ModelVersion("m", i, LifecycleState.APPROVED, f"file:///m/{i}") for i in (1, 2)]


class TestMemoryMonitor(MonitorSuite):
    @pytest.fixture
    def monitor(self, tmp_path: Path) -> MemoryMonitor:
        return MemoryMonitor(None, context(tmp_path))

    @pytest.fixture
    def frames(self) -> ListFrames:
        return ListFrames()


class TestLocalOrchestrator(OrchestratorSuite):
    capabilities = LOCAL_MANIFEST.roles[Role.ORCHESTRATOR].capabilities

    @pytest.fixture
    def orchestrator_session(self, tmp_path: Path, recipe: Recipe) -> Any:
        stack_file = tmp_path / "stack.yaml"
        stack_file.write_text(
            f"name: suite\nhome: {tmp_path / '.mlstack'}\n"
            f"spine: {{url: 'sqlite:///{tmp_path / 'spine.db'}'}}\n"
        )
        with StackSession.open(stack_file, recipe=recipe, registry=AdapterRegistry()) as session:
            yield session
