"""What the tracking store accepts, checked before anything is buffered or sent.

The rules are MLflow's own (`mlflow.utils.validation`, the functions its stores call on every
`log_batch`): allowed characters, names that would resolve to other paths, 250-character keys,
numeric values, long param/tag values. Calling them here, rather than copying them, keeps the
rule MLflow's when MLflow changes it. They are private names, so they are imported in this one
module only.

One rule is ours: ±inf is refused. MLflow's SQL stores keep it as ±1.7976931348623157e308 and
read that back, a number nobody logged; NaN is stored (and read back) as NaN, so it is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar, cast

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils import validation as _mlflow

from stack.errors import TrackingDataRefused

_E = TypeVar("_E", Param, RunTag)

# Each raises MlflowException(INVALID_PARAMETER_VALUE) saying what is wrong (untyped upstream).
_validate_metric = cast(Callable[[str, float, int, int], None], _mlflow._validate_metric)
_validate_param = cast(Callable[[str, str], object], _mlflow._validate_param)
_validate_tag = cast(Callable[[str, str], object], _mlflow._validate_tag)


#: Metric names MLflow's rules accepted in this process. A metric is logged at every step, and
#: the name rules (characters, path forms, length) were most of the cost of a point; what
#: varies per point — the value (`_as_float`: a finite number), the step (an integer, checked
#: below) and the timestamp (ours) — is still checked each time.
_ACCEPTED_METRIC_NAMES: set[str] = set()
_MAX_REMEMBERED = 100_000


def metric_points(
    run_id: str, metrics: Mapping[str, object], *, step: int, timestamp: int
) -> list[Metric]:
    """`metrics` as MLflow points (value as float, `timestamp` in ms since the epoch).

    Raises TrackingDataRefused naming every key the store would refuse and why (bad name,
    over 250 characters, value not a number, ±inf, step not an integer); then no point of
    `metrics` is returned, so a caller buffers all of them or none.
    """
    if isinstance(step, bool) or not isinstance(step, int):
        raise TrackingDataRefused(
            f"run {run_id}: step {step!r} refused: a step must be an integer (64-bit)"
        )
    points: list[Metric] = []
    problems: list[str] = []
    for key, raw in metrics.items():
        try:
            value = _as_float(raw)
            if key not in _ACCEPTED_METRIC_NAMES:  # its name is checked once per process
                _validate_metric(key, value, timestamp, step)
                if len(_ACCEPTED_METRIC_NAMES) < _MAX_REMEMBERED:
                    _ACCEPTED_METRIC_NAMES.add(key)
        except (MlflowException, ValueError) as exc:
            problems.append(f"metric {key!r}: {_reason(exc)}")
            continue
        points.append(Metric(key, value, timestamp, step))
    if problems:
        raise _refused(run_id, "metrics", problems)
    return points


def params(run_id: str, values: Mapping[str, object]) -> list[Param]:
    """`values` as MLflow params (values as str); TrackingDataRefused names each bad key."""
    return _strings(run_id, "param", values, _validate_param, Param)


def tags(run_id: str, values: Mapping[str, object]) -> list[RunTag]:
    """`values` as MLflow run tags (values as str); TrackingDataRefused names each bad key."""
    return _strings(run_id, "tag", values, _validate_tag, RunTag)


def _strings(
    run_id: str,
    kind: str,
    values: Mapping[str, object],
    validate: Callable[[str, str], object],
    entity: Callable[[str, str], _E],
) -> list[_E]:
    """Each key/value (value as str) checked by MLflow's `validate` and made an `entity`."""
    items: list[_E] = []
    problems: list[str] = []
    for key, value in values.items():
        try:
            validate(key, str(value))
        except MlflowException as exc:
            problems.append(f"{kind} {key!r}: {_reason(exc)}")
            continue
        items.append(entity(key, str(value)))
    if problems:
        raise _refused(run_id, f"{kind}s", problems)
    return items


def point_problem(point: Metric) -> str | None:
    """Why the store would refuse `point` (one read back from a spill file), or None."""
    try:
        _validate_metric(point.key, _as_float(point.value), point.timestamp, point.step)
    except (MlflowException, ValueError) as exc:
        return _reason(exc)
    return None


def _as_float(raw: object) -> float:
    # float() takes numpy and torch scalars alike; MLflow itself refuses bools, and so do we.
    if isinstance(raw, bool | str | bytes) or raw is None:
        raise ValueError(f"value {raw!r} is not a number")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"value {raw!r} is not a number") from None
    if math.isinf(value):
        raise ValueError(
            f"value {value} refused: MLflow would store it as ±1.8e308, not as infinity; "
            "log a finite value or leave the point out"
        )
    return value


def _reason(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, MlflowException) else str(exc)
    return message.strip().rstrip(".")


def _refused(run_id: str, what: str, problems: list[str]) -> TrackingDataRefused:
    return TrackingDataRefused(
        f"run {run_id}: MLflow refuses {'; '.join(problems)}. No {what} of this call were "
        "logged; the run's other data is kept"
    )
