"""The adapter's fast checks give Evidently's own verdicts and scores: the same test chosen
per column, the same threshold, the same drifted columns, on several generated datasets
(large and small, numeric and categorical, shifted and not)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stack.contract.monitoring import ColumnPolicy
from stack.plugins.manifest import AdapterContext
from stack_evidently.monitor import EvidentlyMonitor

P_VALUE_TESTS = ("K-S p_value", "chi-square p_value", "Z-test p_value")


def dataset(seed: int, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(shift: float, skew: list[float]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "steady": rng.normal(size=rows),
                "shifted": rng.normal(shift, size=rows),
                "wider": rng.normal(0, 1 + shift, size=rows),
                "count": rng.poisson(3 + shift, size=rows),
                "plan": rng.choice(["basic", "plus", "pro"], rows, p=skew),
            }
        )

    return frame(0.0, [0.5, 0.3, 0.2]), frame(0.3 * (seed % 3), [0.2, 0.3, 0.5])


def evidently_verdicts(
    reference: pd.DataFrame, current: pd.DataFrame
) -> dict[str, tuple[float, bool]]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset(columns=list(reference.columns))]).run(
        current_data=current, reference_data=reference
    )
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        found = re.match(
            r"ValueDrift\(column=(.+),method=(.+),threshold=(.+)\)", metric["metric_name"]
        )
        if found:
            column, method, threshold = found.group(1), found.group(2), float(found.group(3))
            score = float(metric["value"])
            drifted = score < threshold if method in P_VALUE_TESTS else score >= threshold
            verdicts[column] = (score, drifted)
    return verdicts


@pytest.mark.parametrize(("seed", "rows"), [(1, 5000), (2, 5000), (3, 800), (4, 300), (5, 20000)])
def test_same_drifted_columns_and_scores_as_evidently(seed: int, rows: int, tmp_path: Path) -> None:
    reference, current = dataset(seed, rows)
    ours = EvidentlyMonitor(None, AdapterContext(tmp_path, tmp_path)).drift(
        reference, current, columns=[ColumnPolicy(c) for c in reference.columns]
    )
    expected = evidently_verdicts(reference, current)
    assert set(expected) == set(reference.columns)
    for column in ours.columns:
        score, drifted = expected[column.column]
        assert column.drifted == drifted, (column, score)
        assert column.score == pytest.approx(score, rel=1e-6, abs=1e-9), column
    assert any(c.drifted for c in ours.columns) or seed % 3 == 0


def test_the_reference_is_profiled_once(tmp_path: Path) -> None:
    reference, current = dataset(7, 3000)
    monitor = EvidentlyMonitor(None, AdapterContext(tmp_path, tmp_path))
    columns = [ColumnPolicy(c) for c in reference.columns]
    monitor.drift(reference, current, columns=columns)
    first = next(iter(monitor._profiles.values()))[1]
    monitor.drift(reference, current.sample(frac=1.0, random_state=1), columns=columns)
    assert next(iter(monitor._profiles.values()))[1] is first
