"""The MLflow adapter passes the Tracker and Registry suites, on SQLite and on a server."""

from __future__ import annotations

import uuid

import pytest

from stack.contract.roles import Role
from stack.plugins.manifest import AdapterContext
from stack.testing import RegistrySuite, TrackerSuite
from stack_mlflow.config import MlflowRegistryConfig, MlflowTrackerConfig
from stack_mlflow.manifest import MANIFEST
from stack_mlflow.registry import MlflowRegistry
from stack_mlflow.tracker import MlflowTracker


class TestMlflowTracker(TrackerSuite):
    capabilities = MANIFEST.roles[Role.TRACKER].capabilities

    @pytest.fixture
    def tracker(self, tracking_uri: str, context: AdapterContext) -> MlflowTracker:
        return MlflowTracker(MlflowTrackerConfig(tracking_uri=tracking_uri), context)


class TestMlflowRegistry(RegistrySuite):
    capabilities = MANIFEST.roles[Role.REGISTRY].capabilities

    @pytest.fixture
    def registry(self, tracking_uri: str, context: AdapterContext) -> MlflowRegistry:
        # The server is shared by the session: a fresh model name per test keeps them apart.
        self.model = f"suite-{uuid.uuid4().hex[:8]}"
        return MlflowRegistry(MlflowRegistryConfig(tracking_uri=tracking_uri), context)

    @pytest.fixture
    def model_source(self, tracking_uri: str, context: AdapterContext):  # type: ignore[no-untyped-def]
        """Sources a server accepts: models logged by real runs (LoggedModels, no files)."""
        tracker = MlflowTracker(MlflowTrackerConfig(tracking_uri=tracking_uri), context)

        def make() -> tuple[str, str | None]:
            run = tracker.start_run("suite-registry")
            experiment = tracker.client.get_run(run.run_id).info.experiment_id
            logged = tracker.client.create_logged_model(
                experiment, source_run_id=run.run_id, name="model"
            )
            tracker.finish_run(run)
            return f"models:/{logged.model_id}", run.run_id

        return make
