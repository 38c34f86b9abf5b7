"""Behaviour every Registry adapter must have. Provide a `registry` fixture."""

from __future__ import annotations

import pytest

from stack.contract.registry import Registry
from stack.contract.states import LifecycleState as S
from stack.errors import InvalidTransition, NotFound
from stack.testing.base import RoleSuite


class RegistrySuite(RoleSuite):
    model = "suite-model"

    def test_registered_versions_are_numbered_candidates(self, registry: Registry) -> None:
        first = registry.register(self.model, "file:///m/1", run_id="run-1")
        second = registry.register(self.model, "file:///m/2", run_id="run-2")
        assert (first.version, second.version) == (1, 2)
        assert first.state == second.state == S.CANDIDATE
        assert first.ref == f"{self.model}@1"
        assert [v.version for v in registry.versions(self.model)] == [1, 2]

    def test_version_is_found_by_number_state_and_run(self, registry: Registry) -> None:
        version = registry.register(self.model, "file:///m/1", run_id="run-42")
        assert registry.get_version(self.model, 1).source_uri == "file:///m/1"
        assert [v.version for v in registry.find_by_run("run-42")] == [version.version]
        registry.set_state(self.model, 1, S.APPROVED)
        assert [v.version for v in registry.find_by_state(self.model, S.APPROVED)] == [1]

    def test_unknown_version_is_not_found(self, registry: Registry) -> None:
        with pytest.raises(NotFound):
            registry.get_version(self.model, 99)

    def test_lifecycle_moves_through_legal_states(self, registry: Registry) -> None:
        registry.register(self.model, "file:///m/1")
        for state in (S.APPROVED, S.CANARY, S.SERVING, S.RETIRED):
            assert registry.set_state(self.model, 1, state).state == state
        assert registry.get_version(self.model, 1).state == S.RETIRED

    def test_illegal_move_is_refused_and_changes_nothing(self, registry: Registry) -> None:
        registry.register(self.model, "file:///m/1")
        with pytest.raises(InvalidTransition):
            registry.set_state(self.model, 1, S.SERVING)  # a candidate must be approved first
        assert registry.get_version(self.model, 1).state == S.CANDIDATE

    def test_only_one_version_serves_at_a_time(self, registry: Registry) -> None:
        for i in (1, 2):
            registry.register(self.model, f"file:///m/{i}")
            registry.set_state(self.model, i, S.APPROVED)
            registry.set_state(self.model, i, S.SERVING)
        serving = registry.find_by_state(self.model, S.SERVING)
        assert [v.version for v in serving] == [2]
        assert registry.get_version(self.model, 1).state == S.RETIRED

    def test_tags_are_kept(self, registry: Registry) -> None:
        registry.register(self.model, "file:///m/1", tags={"framework": "sklearn"})
        assert registry.get_version(self.model, 1).tags["framework"] == "sklearn"
