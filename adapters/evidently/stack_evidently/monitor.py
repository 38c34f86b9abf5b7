"""The Monitor role on Evidently 0.7.

Drift: Evidently's tests and thresholds per column (see `drift`), the reference profiled once
and reused while it is checked against window after window; the full Evidently HTML report
only when a path is asked for. Performance: Evidently's classification and regression
metrics over the labelled rows, with the label coverage, and a window with too few labels
reported as such instead of as numbers."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from stack.contract.monitoring import (
    ColumnDrift,
    ColumnPolicy,
    ColumnQuality,
    DriftReport,
    PerformanceReport,
    QualityReport,
    TaskKind,
)
from stack.errors import StackError
from stack.plugins.manifest import AdapterContext
from stack_evidently import drift as checks
from stack_evidently.config import EvidentlyConfig

CLASSIFICATION_METRICS = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1Score",
}
REGRESSION_METRICS = {"mae": "MAE", "rmse": "RMSE", "r2": "R2Score"}


class EvidentlyMonitor:
    def __init__(self, config: EvidentlyConfig | None, context: AdapterContext) -> None:
        self.config = config or EvidentlyConfig()
        self.context = context
        # id(frame) -> (frame, profile): the frame is held so that its id is not reused.
        # A reference given as a mapping of columns is converted once, under the same rule.
        self._profiles: OrderedDict[
            tuple[int, tuple[str, ...]], tuple[object, checks.ReferenceProfile]
        ]
        self._profiles = OrderedDict()
        self._converted: OrderedDict[int, tuple[object, pd.DataFrame]] = OrderedDict()

    def drift(
        self,
        reference: object,
        current: object,
        *,
        columns: Sequence[ColumnPolicy],
        prediction_column: str | None = None,
        html_path: Path | None = None,
    ) -> DriftReport:
        ref, cur = self._reference(reference), _frame(current, "current")
        names = [p.column for p in columns] + ([prediction_column] if prediction_column else [])
        for label, frame in (("reference", ref), ("current", cur)):
            missing = [n for n in names if n not in frame.columns]
            if missing:
                raise StackError(
                    f"the {label} frame has no column {', '.join(map(repr, missing))}; "
                    f"it has {', '.join(map(str, frame.columns))}"
                )
        empty = [n for n in names if not ref[n].notna().any()]
        if empty:  # a test against no values answers NaN, which reads as "no drift"
            raise StackError(
                f"the reference has no value in column {', '.join(map(repr, empty))} "
                f"(all missing in {len(ref)} rows): drift cannot be measured against it; "
                "drop the column from the policy or save a reference that has it"
            )
        profiled = self._profile(ref, names)
        results = tuple(checks.column_drift(profiled, cur, policy) for policy in columns)
        prediction: ColumnDrift | None = None
        if prediction_column:
            prediction = checks.column_drift(profiled, cur, ColumnPolicy(prediction_column))
        if html_path is not None:
            self._html(ref, cur, names, html_path)
        return DriftReport(results, prediction, html_path)

    def quality(
        self, reference: object, current: object, *, columns: Sequence[str]
    ) -> QualityReport:
        """Evidently's data-quality measures, computed directly: missing values (its
        MissingValueCount), values outside the reference's [min, max] (OutRangeValueCount,
        as a share of all rows) and values the reference never had (new categories)."""
        ref, cur = self._reference(reference), _frame(current, "current")
        results: list[ColumnQuality] = []
        for name in columns:
            if name not in cur.columns or name not in ref.columns:
                continue
            now, before = cur[name], ref[name].dropna()
            missing = float(now.isna().mean()) if len(now) else 0.0
            present = now.dropna()
            if _numeric(before) and _numeric(present):
                low, high = before.min(), before.max()
                outside = int(((present < low) | (present > high)).sum())
                results.append(
                    ColumnQuality(name, missing, outside / len(now) if len(now) else 0.0)
                )
            else:
                new = sorted(set(map(str, present.unique())) - set(map(str, before.unique())))
                results.append(ColumnQuality(name, missing, new_categories=tuple(new[:20])))
        return QualityReport(len(cur), tuple(results))

    def performance(
        self,
        frame: object,
        *,
        task: TaskKind,
        target: str,
        prediction: str,
        min_labelled_rows: int = 30,
    ) -> PerformanceReport:
        data = _frame(frame, "window")
        for column in (target, prediction):
            if column not in data.columns:
                raise StackError(f"the window has no column {column!r}")
        labelled = data[data[target].notna() & data[prediction].notna()]
        rows, count = len(data), len(labelled)
        if count < min_labelled_rows:
            note = (
                f"only {count} of {rows} rows have labels (at least {min_labelled_rows} are "
                "needed): no metrics reported for this window"
            )
            return PerformanceReport({}, rows, count, sufficient=False, notes=(note,))
        metrics = _evidently_metrics(labelled, task, target, prediction)
        return PerformanceReport(metrics, rows, count, sufficient=True)

    # -- helpers ------------------------------------------------------------------------

    def _reference(self, value: object) -> pd.DataFrame:
        """The reference as a DataFrame, converted once per mapping while it is checked."""
        if isinstance(value, pd.DataFrame):
            return value
        cached = self._converted.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        frame = _frame(value, "reference")
        self._converted[id(value)] = (value, frame)
        while len(self._converted) > self.config.reference_cache:
            self._converted.popitem(last=False)
        return frame

    def _profile(self, reference: pd.DataFrame, names: list[str]) -> checks.ReferenceProfile:
        key = (id(reference), tuple(names))
        cached = self._profiles.get(key)
        if cached is not None and cached[0] is reference:
            self._profiles.move_to_end(key)
            return cached[1]
        profiled = checks.profile(reference, names)
        self._profiles[key] = (reference, profiled)
        while len(self._profiles) > self.config.reference_cache:
            self._profiles.popitem(last=False)
        return profiled

    @staticmethod
    def _html(reference: pd.DataFrame, current: pd.DataFrame, names: list[str], path: Path) -> None:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        path.parent.mkdir(parents=True, exist_ok=True)
        snapshot = Report([DataDriftPreset(columns=names)]).run(
            current_data=current[names], reference_data=reference[names]
        )
        snapshot.save_html(str(path))


def _evidently_metrics(
    labelled: pd.DataFrame, task: TaskKind, target: str, prediction: str
) -> dict[str, float]:
    import evidently.metrics as em
    from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report

    if task is TaskKind.CLASSIFICATION:
        definition = DataDefinition(
            classification=[BinaryClassification(target=target, prediction_labels=prediction)]
        )
        wanted = CLASSIFICATION_METRICS
    else:
        definition = DataDefinition(regression=[Regression(target=target, prediction=prediction)])
        wanted = REGRESSION_METRICS
    dataset = Dataset.from_pandas(labelled[[target, prediction]], data_definition=definition)
    snapshot = Report([getattr(em, cls)() for cls in wanted.values()]).run(dataset, None)
    values = [m["value"] for m in snapshot.dict()["metrics"]]
    return {
        name: float(value["mean"] if isinstance(value, dict) else value)
        for name, value in zip(wanted, values, strict=True)
    }


def _frame(value: object, label: str) -> pd.DataFrame:
    """A DataFrame as given, or one made from a mapping of column name to values."""
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, Mapping):
        try:
            return pd.DataFrame({str(k): list(v) for k, v in value.items()})
        except ValueError as exc:
            raise StackError(f"the {label} columns do not make a table: {exc}") from exc
    raise StackError(
        f"the {label} data must be a pandas DataFrame or a mapping of columns, "
        f"got {type(value).__name__}"
    )


def _numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))
