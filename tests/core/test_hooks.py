"""Lifecycle hooks: many observers, vetoes that stop an action, checked at registration."""

from __future__ import annotations

import pytest

from stack.errors import StackConfigError, StackError, Vetoed
from stack.hooks import HookBus, Veto, hookimpl


class Observer:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def on_run_finished(self, run_id: str, recipe: str, state: str) -> None:
        self.seen.append(f"{recipe}:{state}")


class NoInterns:
    @hookimpl
    def on_promotion_requested(self, version: object, target_state: str, actor: str) -> object:
        if actor == "intern":
            return Veto("interns do not promote")
        return None


class NeedsTicket:
    @hookimpl
    def on_promotion_requested(self, target_state: str) -> object:
        return Veto("no change ticket") if target_state == "serving" else None


def test_every_observer_sees_the_event() -> None:
    bus = HookBus(load_entry_points=False)
    first, second = Observer(), Observer()
    bus.register(first)
    bus.register(second)
    bus.fire("on_run_finished", run_id="r", recipe="q", state="succeeded")
    assert first.seen == second.seen == ["q:succeeded"]


def test_a_veto_stops_the_action_with_every_reason() -> None:
    bus = HookBus(load_entry_points=False)
    bus.register(NoInterns())
    bus.register(NeedsTicket())
    with pytest.raises(Vetoed) as caught:
        bus.fire("on_promotion_requested", version=None, target_state="serving", actor="intern")
    assert sorted(caught.value.reasons) == ["interns do not promote", "no change ticket"]


def test_no_veto_lets_the_action_go_on() -> None:
    bus = HookBus(load_entry_points=False)
    bus.register(NoInterns())
    bus.fire("on_promotion_requested", version=None, target_state="approved", actor="lead")


def test_misspelt_event_fails_at_registration() -> None:
    class Typo:
        @hookimpl
        def on_promotoin_requested(self, version: object) -> None: ...

    bus = HookBus(load_entry_points=False)
    with pytest.raises(StackConfigError, match="on_promotoin_requested"):
        bus.register(Typo())


def test_unknown_argument_fails_at_registration() -> None:
    class WrongArgs:
        @hookimpl
        def on_run_finished(self, run_id: str, colour: str) -> None: ...

    bus = HookBus(load_entry_points=False)
    with pytest.raises(StackConfigError, match="colour"):
        bus.register(WrongArgs())


def test_observing_events_cannot_be_vetoed() -> None:
    class Grumpy:
        @hookimpl
        def on_run_finished(self, state: str) -> object:
            return Veto("too late")

    bus = HookBus(load_entry_points=False)
    bus.register(Grumpy())
    with pytest.raises(StackError, match="cannot be vetoed"):
        bus.fire("on_run_finished", run_id="r", recipe="q", state="failed")


def test_recipe_hook_target_that_does_not_load_is_a_config_error() -> None:
    bus = HookBus(load_entry_points=False)
    with pytest.raises(StackConfigError, match=r"recipe\.yaml: hooks: cannot load 'nope\.mod:x'"):
        bus.register_target("nope.mod:x", origin="recipe.yaml")


def test_a_recipe_hook_registered_twice_is_called_once(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`mlstack run` registers its recipe's hooks, and so does the session when an event is
    about a version that recipe built: the second registration must be a no-op."""
    (tmp_path / "counting_hooks.py").write_text(
        "from stack.hooks import hookimpl\n"
        "calls = []\n"
        "@hookimpl\n"
        "def on_run_finished(run_id, recipe, state):\n"
        "    calls.append(run_id)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    bus = HookBus(load_entry_points=False)
    bus.register_target("counting_hooks", origin="recipe.yaml")
    bus.register_target("counting_hooks", origin="recipe.yaml")
    bus.fire("on_run_finished", run_id="r1", recipe="q", state="succeeded")
    import counting_hooks  # type: ignore[import-not-found]

    assert counting_hooks.calls == ["r1"]


def test_a_hook_that_raises_is_named_and_the_action_is_refused() -> None:
    class Broken:
        @hookimpl
        def on_promotion_requested(self, target_state: str) -> object:
            raise RuntimeError("ticket system down")

    bus = HookBus(load_entry_points=False)
    bus.register(Broken())
    with pytest.raises(
        StackError, match="a hook of on_promotion_requested raised RuntimeError: ticket system"
    ):
        bus.fire("on_promotion_requested", version=None, target_state="serving", actor="a")


def test_a_hook_module_that_does_not_compile_is_a_config_error(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "broken_hooks.py").write_text("def on_promotion_requested(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bus = HookBus(load_entry_points=False)
    with pytest.raises(StackConfigError, match="cannot load 'broken_hooks': SyntaxError"):
        bus.register_target("broken_hooks", origin="recipe.yaml")
