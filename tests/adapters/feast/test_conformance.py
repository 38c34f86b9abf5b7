"""The Feast adapter passes the FeatureStore suite on Feast's local provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.contract.roles import Role
from stack.plugins.manifest import AdapterContext
from stack.testing import FeatureStoreSuite
from stack.testing.frames import PandasFrames
from stack_feast.config import FeastConfig
from stack_feast.manifest import MANIFEST
from stack_feast.store import FeastFeatureStore


class TestFeastFeatureStore(FeatureStoreSuite):
    capabilities = MANIFEST.roles[Role.FEATURES].capabilities

    @pytest.fixture
    def feature_store(self, tmp_path: Path) -> FeastFeatureStore:
        context = AdapterContext(home=tmp_path / ".mlstack", base_dir=tmp_path)
        return FeastFeatureStore(FeastConfig(), context)

    @pytest.fixture
    def frames(self) -> PandasFrames:
        return PandasFrames()
