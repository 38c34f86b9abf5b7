"""The BentoML adapter passes the Server suite with real `bentoml serve` processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack.contract.registry import ModelVersion
from stack.contract.roles import Role
from stack.testing import ServerSuite
from stack_bentoml.config import BentoConfig
from stack_bentoml.manifest import MANIFEST
from stack_bentoml.server import BentoServer
from tests.adapters.bentoml.conftest import Stack, free_port


class TestBentoServer(ServerSuite):
    capabilities = MANIFEST.roles[Role.SERVER].capabilities

    @pytest.fixture
    def server(self, stack: Stack) -> Iterator[BentoServer]:
        with stack.session() as session:
            context = session.adapter_context()
        server = BentoServer(BentoConfig(port=free_port(), log_flush_seconds=0.2), context)
        yield server
        for endpoint in server.endpoints():
            server.undeploy(endpoint.name)

    @pytest.fixture
    def versions(self, stack: Stack) -> list[ModelVersion]:
        return [stack.versions.champion, stack.versions.challenger]
