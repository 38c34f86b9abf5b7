"""Behaviour every Registry adapter must have. Provide a `registry` fixture.

Override `model_source` when the registry only accepts sources it can check (an MLflow
server wants a model logged by a real run): it returns a factory of `(source_uri, run_id)`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from stack.contract.registry import Registry
from stack.contract.states import LifecycleState as S
from stack.errors import InvalidTransition, NotFound
from stack.testing.base import RoleSuite

SourceFactory = Callable[[], tuple[str, str | None]]


class RegistrySuite(RoleSuite):
    model = "suite-model"

    @pytest.fixture
    def model_source(self) -> SourceFactory:
        counter = itertools.count(1)

        def make() -> tuple[str, str | None]:
            n = next(counter)
            return f"file:///models/{n}", f"run-{n}"

        return make

    def _register(self, registry: Registry, source: SourceFactory, **tags: str) -> int:
        uri, run_id = source()
        return registry.register(self.model, uri, run_id=run_id, tags=tags or None).version

    def test_it_implements_what_it_declares(self, registry: Registry) -> None:
        self.check_declared(registry)

    def test_registered_versions_are_numbered_candidates(
        self, registry: Registry, model_source: SourceFactory
    ) -> None:
        uri, run_id = model_source()
        first = registry.register(self.model, uri, run_id=run_id)
        second = registry.register(self.model, *model_source()[:1])
        assert (first.version, second.version) == (1, 2)
        assert first.state == second.state == S.CANDIDATE
        assert first.ref == f"{self.model}@1"
        assert [v.version for v in registry.versions(self.model)] == [1, 2]

    def test_version_is_found_by_number_state_and_run(
        self, registry: Registry, model_source: SourceFactory
    ) -> None:
        uri, run_id = model_source()
        version = registry.register(self.model, uri, run_id=run_id)
        assert registry.get_version(self.model, 1).source_uri == uri
        assert run_id is not None
        assert [v.version for v in registry.find_by_run(run_id)] == [version.version]
        registry.set_state(self.model, 1, S.APPROVED)
        assert [v.version for v in registry.find_by_state(self.model, S.APPROVED)] == [1]

    def test_unknown_version_is_not_found(self, registry: Registry) -> None:
        with pytest.raises(NotFound):
            registry.get_version(self.model, 99)

    def test_lifecycle_moves_through_legal_states(
        self, registry: Registry, model_source: SourceFactory
    ) -> None:
        self._register(registry, model_source)
        for state in (S.APPROVED, S.CANARY, S.SERVING, S.RETIRED):
            assert registry.set_state(self.model, 1, state).state == state
        assert registry.get_version(self.model, 1).state == S.RETIRED

    def test_illegal_move_is_refused_and_changes_nothing(
        self, registry: Registry, model_source: SourceFactory
    ) -> None:
        self._register(registry, model_source)
        with pytest.raises(InvalidTransition):
            registry.set_state(self.model, 1, S.SERVING)  # a candidate must be approved first
        assert registry.get_version(self.model, 1).state == S.CANDIDATE

    def test_only_one_version_serves_at_a_time(
        self, registry: Registry, model_source: SourceFactory
    ) -> None:
        for _ in (1, 2):
            version = self._register(registry, model_source)
            registry.set_state(self.model, version, S.APPROVED)
            registry.set_state(self.model, version, S.SERVING)
        serving = registry.find_by_state(self.model, S.SERVING)
        assert [v.version for v in serving] == [2]
        assert registry.get_version(self.model, 1).state == S.RETIRED

    def test_registered_models_are_listed(
        self, registry: Registry, model_source: SourceFactory
    ) -> None:
        self._register(registry, model_source)
        assert self.model in registry.models()

    def test_tags_are_kept(self, registry: Registry, model_source: SourceFactory) -> None:
        self._register(registry, model_source, framework="sklearn")
        assert registry.get_version(self.model, 1).tags["framework"] == "sklearn"
