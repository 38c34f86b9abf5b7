"""Rollout: how a model version reaches live traffic, judged against SLOs, rolled back on a
breach. The core owns it; the Server role only loads versions and applies traffic splits.

The names below are loaded when first used (PEP 562), so that a read command importing a
light module of the package (`stack.rollout.subjects`, `history`) does not import the
controller and what it needs (the lifecycle, recipes)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stack.rollout.controller import BakeTick, RolloutController, RolloutResult
    from stack.rollout.judge import breaches

__all__ = ["BakeTick", "RolloutController", "RolloutResult", "breaches"]

_HOMES = {
    "BakeTick": "stack.rollout.controller",
    "RolloutController": "stack.rollout.controller",
    "RolloutResult": "stack.rollout.controller",
    "breaches": "stack.rollout.judge",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
