"""Per-column drift with Evidently's own statistical tests, defaults and thresholds.

Evidently picks a test per column from its type, size and number of distinct values (normed
Wasserstein for large numeric columns, K-S for small ones, Jensen-Shannon or chi-square for
categories) and each test has its default threshold. That choice and those tests are used
here, called directly: a full Evidently Report costs seconds of fixed overhead per check and
builds plots nobody reads on a schedule. The reference is profiled once (column types, and
for Wasserstein its sorted values and spread), so a check only sorts the current window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stack.contract.monitoring import ColumnDrift, ColumnPolicy
from stack.errors import StackError


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    values: pd.Series
    distinct: int
    sorted_values: np.ndarray | None  # numeric columns: for Wasserstein without re-sorting
    spread: float


@dataclass(frozen=True)
class ReferenceProfile:
    columns: dict[str, ColumnProfile]
    rows: int


def profile(reference: pd.DataFrame, columns: list[str]) -> ReferenceProfile:
    profiled: dict[str, ColumnProfile] = {}
    for name in columns:
        series = reference[name].replace([np.inf, -np.inf], np.nan).dropna()
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        ordered = np.sort(series.to_numpy(dtype=float)) if numeric else None
        spread = max(float(np.std(ordered)), 0.001) if ordered is not None else 0.0
        profiled[name] = ColumnProfile(name, series, int(series.nunique()), ordered, spread)
    return ReferenceProfile(profiled, len(reference))


def column_drift(
    reference: ReferenceProfile, current: pd.DataFrame, policy: ColumnPolicy
) -> ColumnDrift:
    from evidently.core.datasets import infer_column_type
    from evidently.legacy.core import ColumnType

    column = reference.columns[policy.column]
    raw = current[policy.column]
    if column.sorted_values is not None and pd.api.types.is_numeric_dtype(raw):
        array = raw.to_numpy(dtype=float)
        array = array[np.isfinite(array)]
        values = pd.Series(array, copy=False)
    else:
        values = raw.replace([np.inf, -np.inf], np.nan).dropna()
    if values.empty:
        raise StackError(f"column {policy.column!r} has no values in the current window")
    # As Evidently does: the column's type is inferred from the current data.
    kind = ColumnType(infer_column_type(raw).value)
    if kind not in (ColumnType.Numerical, ColumnType.Categorical):
        kind = ColumnType.Categorical
    test = _choose(column, values, kind, policy.method)
    threshold = test.default_threshold if policy.threshold is None else policy.threshold
    if test.name == "wasserstein" and column.sorted_values is not None:
        ordered = np.sort(values.to_numpy())
        score = _wasserstein(column.sorted_values, ordered) / column.spread
        return ColumnDrift(policy.column, test.name, float(score), threshold, score >= threshold)
    result = test(column.values, values, kind, threshold)
    return ColumnDrift(
        policy.column,
        test.name,
        float(result.drift_score),
        float(result.actual_threshold),
        bool(result.drifted),
    )


def _choose(column: ColumnProfile, values: pd.Series, kind: Any, method: str | None) -> Any:
    """Evidently's choice of test. Its default rule looks at the size of the reference and
    the distinct values of reference and current together; when the reference alone already
    has more than five, the answer is known without counting the current window again."""
    from evidently.legacy.calculations.stattests import wasserstein_stat_test
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    large = column.values.shape[0] > 1000
    if method is None and kind == ColumnType.Numerical and large and column.distinct > 5:
        return wasserstein_stat_test
    return get_stattest(column.values, values, kind, method)


def _wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance of two sorted samples: the area between their CDFs (what
    scipy.stats.wasserstein_distance computes, without sorting the reference again). The
    two sorted runs are merged by a stable sort (linear on runs), and each CDF is the
    running count of its own sample's points."""
    both = np.concatenate([reference, current])
    order = np.argsort(both, kind="stable")
    merged = both[order]
    seen_reference = np.cumsum(order < reference.size, dtype=np.int64)[:-1]
    seen = np.arange(1, both.size, dtype=np.int64)
    reference_cdf = seen_reference / reference.size
    current_cdf = (seen - seen_reference) / current.size
    return float(np.sum(np.abs(reference_cdf - current_cdf) * np.diff(merged)))
