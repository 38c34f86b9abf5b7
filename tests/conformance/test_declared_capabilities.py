"""A declared capability is a promise the registry holds an adapter to: one whose protocol the
implementation lacks is refused when the adapter is registered, naming the adapter, the
capability and the missing methods; the suites check the same promise of a built adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.contract.capabilities import PROTOCOLS, ServerCapability, TrackerCapability
from stack.contract.roles import Role
from stack.errors import CapabilityNotImplemented, StackError
from stack.plugins.manifest import AdapterContext, AdapterManifest, RoleBinding
from stack.plugins.registry import AdapterRegistry
from tests.support.memory import MemoryServer, MemoryTracker

pytest_plugins = ["pytester"]


class ReplayingTracker(MemoryTracker):
    """Keeps its promise: `replay` is the SpillReplayer's one method."""

    def replay(self, path: object) -> int:
        return 0


def build_server_without_a_log(config: object, context: object) -> MemoryServer:
    """A factory (not a class): only what it builds can be checked."""
    return MemoryServer(config, context)


def manifest(implementation: str, role: Role, *capabilities: str) -> AdapterManifest:
    binding = RoleBinding(implementation, capabilities=frozenset(capabilities))  # type: ignore[arg-type]
    return AdapterManifest(name="liar", package="mlstack-liar", roles={role: binding})


def test_registering_a_capability_without_its_protocol_fails_naming_what_is_missing() -> None:
    registry = AdapterRegistry(discover=False)
    lying = manifest("tests.support.memory:MemoryServer", Role.SERVER, "canary", "prediction_log")
    with pytest.raises(CapabilityNotImplemented) as caught:
        registry.register(lying)
    message = str(caught.value)
    assert "adapter 'liar' declares server capabilities it does not implement" in message
    assert "'prediction_log' promises PredictionLogReader, and MemoryServer has no logged()" in (
        message
    )
    assert "liar" not in registry.manifests  # nothing was registered


class LogWithoutLookup(MemoryServer):
    """Reads its log whole but cannot be asked which ids it answered."""

    def logged(self, endpoint: str, *, since: object = None, until: object = None) -> list[object]:
        return []


def test_a_prediction_log_must_answer_which_request_ids_it_answered() -> None:
    """`labels ingest` asks the log about a label file's ids only: a reader that can only
    read its log whole does not keep the `prediction_log` promise."""
    registry = AdapterRegistry(discover=False)
    lying = manifest(
        "tests.conformance.test_declared_capabilities:LogWithoutLookup",
        Role.SERVER,
        "prediction_log",
    )
    with pytest.raises(CapabilityNotImplemented, match=r"LogWithoutLookup has no answered_among"):
        registry.register(lying)


def test_every_missing_capability_is_named_at_once() -> None:
    registry = AdapterRegistry(discover=False)
    lying = manifest("tests.support.memory:MemoryServer", Role.SERVER, "package", "processes")
    with pytest.raises(CapabilityNotImplemented) as caught:
        registry.register(lying)
    assert "'processes' promises ProcessInspector" in str(caught.value)
    assert "'package' promises Packager, and MemoryServer has no build()" in str(caught.value)


def test_an_implementation_that_keeps_its_promise_is_registered() -> None:
    registry = AdapterRegistry(discover=False)
    registry.register(
        manifest(
            "tests.conformance.test_declared_capabilities:ReplayingTracker",
            Role.TRACKER,
            "replay",
            "artifacts",
        )
    )
    binding = registry.manifests["liar"].roles[Role.TRACKER]
    assert binding.capabilities == {TrackerCapability.REPLAY, TrackerCapability.ARTIFACTS}


def test_a_factory_is_held_to_its_promise_when_the_role_is_built(tmp_path: Path) -> None:
    registry = AdapterRegistry(discover=False)
    registry.register(
        manifest(
            "tests.conformance.test_declared_capabilities:build_server_without_a_log",
            Role.SERVER,
            "prediction_log",
        )
    )
    context = AdapterContext(home=tmp_path / ".mlstack", base_dir=tmp_path)
    with pytest.raises(CapabilityNotImplemented, match=r"MemoryServer has no logged\(\)"):
        registry.create(Role.SERVER, "liar", None, context)


def test_a_capability_outside_the_role_vocabulary_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(StackError) as caught:
        manifest("tests.support.memory:MemoryServer", Role.SERVER, "blue_green")
    message = str(caught.value)
    assert "adapter 'liar' role server: 'blue_green' is not a server capability" in message
    assert "canary, shadow, ab, prediction_log" in message


def test_every_protocol_capability_belongs_to_the_role_that_can_hold_it() -> None:
    assert PROTOCOLS[ServerCapability.PREDICTION_LOG].__name__ == "PredictionLogReader"
    assert {capability.role for capability in PROTOCOLS} == set(Role) - {Role.MONITOR}


LYING_SUITE = """
import pytest
from stack.contract.capabilities import ServerCapability
from stack.testing import ServerSuite
from tests.support.memory import MemoryServer
from stack.contract import LifecycleState, ModelVersion

class TestLyingServer(ServerSuite):
    capabilities = frozenset({ServerCapability.CANARY, ServerCapability.PREDICTION_LOG})

    @pytest.fixture
    def server(self):
        return MemoryServer(None, None)

    @pytest.fixture
    def versions(self):
        return [ModelVersion("m", i, LifecycleState.APPROVED, f"file:///m/{i}") for i in (1, 2)]
"""


def test_the_suite_fails_an_adapter_that_declares_what_it_lacks(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_lying=LYING_SUITE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=4, skipped=1)
    result.stdout.fnmatch_lines(["*MemoryServer declares capabilities it lacks*logged*"])
