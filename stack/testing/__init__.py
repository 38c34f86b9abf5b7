"""Conformance suites: one abstract pytest class per role (the fsspec abstract-tests pattern).

An adapter's test module subclasses the suite for its role, provides the fixture the suite
names, and inherits every behaviour test; tests that need a capability the adapter does not
declare are skipped, never failed:

    from stack.testing import TrackerSuite
    from stack_mlflow.manifest import MANIFEST

    class TestMlflowTracker(TrackerSuite):
        capabilities = MANIFEST.roles[Role.TRACKER].capabilities

        @pytest.fixture
        def tracker(self, tmp_path):
            return MlflowTracker(MlflowTrackerConfig(tracking_uri=...), context)

These modules import pytest, so they are for test code only.
"""

from stack.testing.base import RoleSuite
from stack.testing.features import FeatureStoreSuite
from stack.testing.monitor import MonitorSuite
from stack.testing.orchestrator import OrchestratorSuite
from stack.testing.registry import RegistrySuite
from stack.testing.server import ServerSuite
from stack.testing.tracker import TrackerSuite

__all__ = [
    "FeatureStoreSuite",
    "MonitorSuite",
    "OrchestratorSuite",
    "RegistrySuite",
    "RoleSuite",
    "ServerSuite",
    "TrackerSuite",
]
