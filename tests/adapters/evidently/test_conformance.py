"""The Evidently adapter passes the Monitor suite on real pandas frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.contract.roles import Role
from stack.plugins.manifest import AdapterContext
from stack.testing import MonitorSuite
from stack.testing.frames import PandasFrames
from stack_evidently.manifest import MANIFEST
from stack_evidently.monitor import EvidentlyMonitor


class TestEvidentlyMonitor(MonitorSuite):
    capabilities = MANIFEST.roles[Role.MONITOR].capabilities

    @pytest.fixture
    def monitor(self, tmp_path: Path) -> EvidentlyMonitor:
        return EvidentlyMonitor(None, AdapterContext(tmp_path / ".mlstack", tmp_path))

    @pytest.fixture
    def frames(self) -> PandasFrames:
        return PandasFrames()
