"""Telling a store that refuses a point apart from a store that is down.

`log_batch` is all or nothing: one point the store refuses (a name it does not allow) fails
the whole batch with INVALID_PARAMETER_VALUE. Treated as an outage, that one point would hold
back every other point of the run forever. Here a refused batch is split until the refused
points are alone; the rest is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from stack_mlflow import validation

#: Error codes that mean "this data, never", as opposed to "not now" (an outage).
REFUSED_CODES = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST"})


@dataclass(frozen=True)
class Refusal:
    point: Metric
    reason: str


def is_refusal(exc: BaseException) -> bool:
    return isinstance(exc, MlflowException) and exc.error_code in REFUSED_CODES


def write_splitting(write: Callable[[list[Metric]], object], points: list[Metric]) -> list[Refusal]:
    """Write `points` with `write` (one call when the store takes them all); returns the points
    the store refused on their merits, with its reason. Any other error propagates (some of
    the points may be written by then: MLflow ignores a point it already has, so the caller
    can retry all of them)."""
    if not points:
        return []
    try:
        write(points)
        return []
    except Exception as exc:
        if not is_refusal(exc):
            raise
        failure: BaseException = exc
    # MLflow's own check finds most refused points at once; halving finds what it misses
    # (a server with other rules, a run that no longer takes points).
    known = [(p, validation.point_problem(p)) for p in points]
    refused = [Refusal(p, problem) for p, problem in known if problem is not None]
    rest = [p for p, problem in known if problem is None]
    if refused:
        return refused + write_splitting(write, rest)
    if len(points) == 1:
        return [Refusal(points[0], _reason(failure))]
    middle = len(points) // 2
    return write_splitting(write, points[:middle]) + write_splitting(write, points[middle:])


def describe(run_id: str, refused: list[Refusal]) -> str:
    """One line per refused key: how many points, which steps, and the store's reason."""
    by_key: dict[tuple[str, str], list[int]] = {}
    for refusal in refused:
        by_key.setdefault((refusal.point.key, refusal.reason), []).append(refusal.point.step)
    lines = [
        f"{key!r} ({len(steps)} point{'s' if len(steps) != 1 else ''}, "
        f"step{'s' if len(steps) != 1 else ''} {_steps(steps)}): {reason}"
        for (key, reason), steps in by_key.items()
    ]
    return (
        f"MLflow refused {len(refused)} metric point{'s' if len(refused) != 1 else ''} of run "
        f"{run_id}, which were not written (the run's other points were): " + "; ".join(lines)
    )


def _steps(steps: list[int]) -> str:
    ordered = sorted(set(steps))
    return ", ".join(map(str, ordered)) if len(ordered) <= 5 else f"{ordered[0]}..{ordered[-1]}"


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, MlflowException) else str(exc)
