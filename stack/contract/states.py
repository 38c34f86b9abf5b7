"""Lifecycle states of a model (or prompt) version, in mlstack's words, and their legal moves.

Adapters map these onto their tool (MLflow aliases and tags); the core decides which moves are
legal so that every registry behaves the same.
"""

from __future__ import annotations

from enum import StrEnum


class LifecycleState(StrEnum):
    CANDIDATE = "candidate"
    APPROVED = "approved"
    CANARY = "canary"
    SHADOW = "shadow"
    SERVING = "serving"
    RETIRED = "retired"
    REJECTED = "rejected"


_S = LifecycleState

#: Where a version may go from each state. `retired` can be brought back as a candidate
#: (a rollback target is re-promoted through the gate, never silently). A `canary` whose
#: rollout ended without a verdict (its process died) goes back to `approved`, the state
#: its gate gave it before the rollout.
ALLOWED_TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    _S.CANDIDATE: frozenset({_S.APPROVED, _S.REJECTED, _S.SHADOW}),
    _S.APPROVED: frozenset({_S.CANARY, _S.SHADOW, _S.SERVING, _S.REJECTED, _S.RETIRED}),
    _S.CANARY: frozenset({_S.APPROVED, _S.SERVING, _S.REJECTED, _S.RETIRED}),
    _S.SHADOW: frozenset({_S.APPROVED, _S.CANARY, _S.SERVING, _S.REJECTED, _S.RETIRED}),
    _S.SERVING: frozenset({_S.RETIRED}),
    _S.RETIRED: frozenset({_S.CANDIDATE, _S.SERVING}),
    _S.REJECTED: frozenset({_S.CANDIDATE}),
}

#: States that at most one version of a model holds at a time. Promoting a version into one
#: retires the previous holder in the same registry operation.
EXCLUSIVE_STATES: frozenset[LifecycleState] = frozenset({_S.SERVING})


def can_transition(current: LifecycleState, target: LifecycleState) -> bool:
    """True when a version in `current` may be moved to `target`."""
    return target in ALLOWED_TRANSITIONS[current]


#: States a version leaves the lifecycle by: it comes back only as a candidate, and goes on
#: from there through the gates like any new version.
_OUT_OF_THE_LIFECYCLE: frozenset[LifecycleState] = frozenset({_S.RETIRED, _S.REJECTED})


def way_back(ref: str, current: LifecycleState, command: str = "mlstack promote") -> str:
    """For a retired or rejected version, how to bring it back into the lifecycle (to add to
    a refusal); "" for any other. `command` is the promote command of its kind."""
    if current not in _OUT_OF_THE_LIFECYCLE:
        return ""
    return f"; bring it back with `{command} {ref} --to candidate`, then approve it"


def refused_move(
    ref: str, current: LifecycleState, target: LifecycleState, command: str = "mlstack promote"
) -> str:
    """Why version `ref`, in `current`, cannot move to `target` (and the way back, if any)."""
    return f"{ref} is {current.value}; it cannot move to {target.value}" + way_back(
        ref, current, command
    )


#: How far along the lifecycle each state an approval can be for is (shadow and canary are
#: the same distance: either may come first).
_DISTANCE: dict[LifecycleState, int] = {
    _S.CANDIDATE: 0,
    _S.APPROVED: 1,
    _S.SHADOW: 2,
    _S.CANARY: 2,
    _S.SERVING: 3,
}


def approvable_for(target: LifecycleState, current: LifecycleState) -> bool:
    """True when a version in `current` may be approved for `target`: a state ahead of its
    own on the way to serving (never `candidate`, `retired` or `rejected`)."""
    return target in _DISTANCE and _DISTANCE[target] > _DISTANCE.get(current, 0)
