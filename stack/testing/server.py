"""Behaviour every Server adapter must have.

Provide `server` and `versions`: two ModelVersions of one model that the server can load.
"""

from __future__ import annotations

import pytest

from stack.contract.capabilities import ServerCapability
from stack.contract.registry import ModelVersion
from stack.contract.serving import Server, TrafficSplit
from stack.errors import NotFound, StackError
from stack.testing.base import RoleSuite

ENDPOINT = "suite-endpoint"


class ServerSuite(RoleSuite):
    def test_it_implements_what_it_declares(self, server: Server) -> None:
        self.check_declared(server)

    def test_deploy_serves_the_version_alone(
        self, server: Server, versions: list[ModelVersion]
    ) -> None:
        endpoint = server.deploy(versions[0], endpoint=ENDPOINT)
        assert endpoint.name == ENDPOINT
        assert dict(endpoint.split.weights) == {versions[0].ref: 1.0}
        assert ENDPOINT in [e.name for e in server.endpoints()]
        assert server.health(ENDPOINT).ready

    def test_canary_split_makes_a_new_revision(
        self, server: Server, versions: list[ModelVersion]
    ) -> None:
        self.require(ServerCapability.CANARY)
        first = server.deploy(versions[0], endpoint=ENDPOINT)
        server.add_version(versions[1], endpoint=ENDPOINT)
        split = TrafficSplit({versions[0].ref: 0.9, versions[1].ref: 0.1})
        second = server.route(ENDPOINT, split)
        assert second.revision > first.revision
        assert dict(second.split.weights) == dict(split.weights)

    def test_shadow_gets_no_live_weight(self, server: Server, versions: list[ModelVersion]) -> None:
        self.require(ServerCapability.SHADOW)
        server.deploy(versions[0], endpoint=ENDPOINT)
        server.add_version(versions[1], endpoint=ENDPOINT)
        endpoint = server.route(
            ENDPOINT, TrafficSplit({versions[0].ref: 1.0}, shadows=(versions[1].ref,))
        )
        assert endpoint.split.shadows == (versions[1].ref,)

    def test_routing_to_an_unknown_version_changes_nothing(
        self, server: Server, versions: list[ModelVersion]
    ) -> None:
        first = server.deploy(versions[0], endpoint=ENDPOINT)
        with pytest.raises(StackError):
            server.route(ENDPOINT, TrafficSplit({"no-such-model@9": 1.0}))
        current = next(e for e in server.endpoints() if e.name == ENDPOINT)
        assert current.revision == first.revision
        assert server.health(ENDPOINT).ready

    def test_undeploy_removes_the_endpoint(
        self, server: Server, versions: list[ModelVersion]
    ) -> None:
        server.deploy(versions[0], endpoint=ENDPOINT)
        server.undeploy(ENDPOINT)
        assert ENDPOINT not in [e.name for e in server.endpoints()]
        with pytest.raises(NotFound):
            server.health(ENDPOINT)
