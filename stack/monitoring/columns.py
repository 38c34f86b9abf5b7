"""Which columns a check can compare, and why the others cannot: missing from the window
(renamed, dropped), of another kind than in the reference (numbers became text), or with no
value at all. Each reason is a message in the check's result; the loop never stops on one.

A column the reference has but the window holds no value of (all null, or absent from every
logged record) is not compared for drift, yet it is the worst data quality there is: the plan
keeps its missing share (1.0) so the check reports it and the missing-share rule can breach.
A column with no value in the reference keeps the window's own missing share the same way."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ColumnPlan:
    """`usable`: columns both sides can be compared on (drift and quality). `problems`: one
    message per column that cannot be, with the reason. `missing`: column -> share of the
    window's rows (0..1) without a value, for the columns quality must report although they
    cannot be compared (no value in the window, or none in the reference)."""

    usable: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    missing: dict[str, float] = field(default_factory=dict)


def kind_of(values: Sequence[Any]) -> str:
    """`numeric`, `text`, `boolean` or `empty` (no value), judged on the present values."""
    kinds = {_kind(v) for v in values if not _missing(v)}
    if not kinds:
        return "empty"
    if kinds == {"numeric"}:
        return "numeric"
    if kinds == {"boolean"}:
        return "boolean"
    return "text"


def plan_columns(
    reference: Mapping[str, Sequence[Any]],
    current: Mapping[str, Sequence[Any]],
    wanted: Sequence[str],
) -> ColumnPlan:
    plan = ColumnPlan()
    for name in wanted:
        if name not in reference:
            plan.problems.append(f"column {name!r} is not in the reference; not checked")
            continue
        if name not in current:
            plan.problems.append(
                f"column {name!r} is missing from the window (renamed or dropped?): "
                "100% missing, drift not compared"
            )
            plan.missing[name] = 1.0
            continue
        if all(_missing(v) for v in current[name]):
            plan.problems.append(
                f"column {name!r} has no value in the window (all missing): drift not compared"
            )
            plan.missing[name] = 1.0
            continue
        before, now = kind_of(reference[name]), kind_of(current[name])
        if before == "empty":
            plan.problems.append(
                f"column {name!r} has no value in the reference: drift not compared"
            )
            plan.missing[name] = missing_share(current[name])
        elif before != now:
            plan.problems.append(
                f"column {name!r} changed type: {before} in the reference, {now} in the window"
            )
        else:
            plan.usable.append(name)
    return plan


def missing_share(values: Sequence[Any]) -> float:
    """Share (0..1) of `values` that are None or NaN; 1.0 for no values at all (a column the
    window should have but has no row of is entirely missing)."""
    if not values:
        return 1.0
    return sum(_missing(v) for v in values) / len(values)


def prediction_scores(values: Sequence[Any]) -> list[Any]:
    """The prediction column as drift compares it: class probabilities (a list of numbers per
    row, as a model served with `predict_proba` answers) become one score per row, the second
    class's for two classes (the positive one, in the model's `classes_` order) and the
    highest for more (the model's confidence); a probability drifts where a label may not.
    Any other value (a label, a regression output) is kept; applied twice, it changes nothing,
    so a reference saved with the scores already compares with a window of lists."""
    return [_score(value) for value in values]


def prediction_labels(values: Sequence[Any]) -> list[Any]:
    """The prediction column as performance compares it with labels: class probabilities
    become the index of the most probable class (labels 0..k-1, the model's `classes_`
    order, as scikit-learn encodes a 0/1 target); any other value is kept."""
    return [_label(value) for value in values]


def _label(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not value:
        return value
    if not all(_kind(v) == "numeric" for v in value):
        return value
    return max(range(len(value)), key=lambda i: value[i])


def _score(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not value:
        return value
    if not all(_kind(v) == "numeric" for v in value):
        return value
    return float(value[1]) if len(value) == 2 else float(max(value))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "numeric"
    return "text"
