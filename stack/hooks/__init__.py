"""Lifecycle hooks: 1-to-N events that user code observes or vetoes (pluggy underneath).

Write a hook as a function marked `@hookimpl`, named after the event it observes:

    from stack.hooks import Veto, hookimpl

    @hookimpl
    def on_promotion_requested(version, target_state, actor):
        if target_state == "serving" and actor == "intern":
            return Veto("interns do not promote to serving")

Selection of adapters (one per role) is the registry's business, never a hook's.
"""

from stack.hooks.bus import HookBus, Veto
from stack.hooks.specs import VETOABLE_EVENTS, hookimpl

__all__ = ["VETOABLE_EVENTS", "HookBus", "Veto", "hookimpl"]
