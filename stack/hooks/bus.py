"""HookBus: register hook implementations (checked at once) and fire events."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pluggy

from stack.errors import StackConfigError, StackError, Vetoed
from stack.hooks.specs import PROJECT, VETOABLE_EVENTS, LifecycleSpecs

ENTRY_POINT_GROUP = "mlstack.hooks"


@dataclass(frozen=True, slots=True)
class Veto:
    """Returned by a hook implementation of a vetoable event to stop the action."""

    reason: str


class HookBus:
    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._manager = pluggy.PluginManager(PROJECT)
        self._manager.add_hookspecs(LifecycleSpecs)
        if load_entry_points:
            self._manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            self._check()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Add an object or module of `@hookimpl` functions; a misspelt event or argument
        fails here, not when the event first fires."""
        try:
            self._manager.register(plugin, name)
        except pluggy.PluginValidationError as exc:
            raise StackConfigError(f"invalid hook implementation: {exc}") from exc
        try:
            self._check()
        except StackConfigError:
            self._manager.unregister(plugin)
            raise

    def register_target(self, target: str, *, origin: str) -> None:
        """Register `module:attribute` (or a module), as named in a recipe's `hooks:`; a target
        already registered from the same origin is left as it is (registering a recipe twice
        must not call its hooks twice)."""
        name = f"{origin}:{target}"
        if self._manager.has_plugin(name):
            return
        module_name, _, attribute = target.partition(":")
        try:
            obj: object = importlib.import_module(module_name)
            if attribute:
                obj = getattr(obj, attribute)
        except Exception as exc:  # ImportError, a SyntaxError in it, what its import raises
            raise StackConfigError(
                f"{origin}: hooks: cannot load {target!r}: {type(exc).__name__}: {exc}"
            ) from exc
        self.register(obj, name=name)

    def _check(self) -> None:
        try:
            self._manager.check_pending()
        except pluggy.PluginValidationError as exc:
            raise StackConfigError(f"invalid hook implementation: {exc}") from exc

    def events(self) -> list[str]:
        return [name for name in dir(LifecycleSpecs) if name.startswith("on_")]

    def fire(self, event: str, **arguments: Any) -> list[Any]:
        """Call every implementation of `event`; for a vetoable event, raise Vetoed if any
        implementation returned a Veto (all of them are asked first, so every reason shows)."""
        caller = getattr(self._manager.hook, event, None)
        if caller is None:
            raise StackError(f"no lifecycle event named {event!r}; events: {self.events()}")
        try:
            results: list[Any] = caller(**arguments)
        except Exception as exc:  # a hook's own bug: named, and the action does not happen
            raise StackError(
                f"a hook of {event} raised {type(exc).__name__}: {exc} (nothing was done)"
            ) from exc
        vetoes = [r.reason for r in results if isinstance(r, Veto)]
        if vetoes:
            if event not in VETOABLE_EVENTS:
                raise StackError(f"{event} cannot be vetoed; it reports what already happened")
            raise Vetoed(event, vetoes)
        return results
