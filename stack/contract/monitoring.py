"""The Monitor role: drift, data quality and, once labels arrive, performance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable


class TaskKind(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass(frozen=True, slots=True)
class ColumnPolicy:
    """How one column is tested for drift; `method=None` keeps the tool's default."""

    column: str
    method: str | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True, slots=True)
class DriftReport:
    columns: tuple[ColumnDrift, ...]
    prediction: ColumnDrift | None = None
    html_path: Path | None = None

    @property
    def drifted_share(self) -> float:
        """Share of checked columns that drifted (0 when none were checked)."""
        if not self.columns:
            return 0.0
        return sum(c.drifted for c in self.columns) / len(self.columns)

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.drifted)


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """Metrics over the labelled rows of a window, with the coverage that backs them."""

    metrics: Mapping[str, float]
    rows: int
    labelled_rows: int
    sufficient: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label_coverage(self) -> float:
        return self.labelled_rows / self.rows if self.rows else 0.0


@dataclass(frozen=True, slots=True)
class ColumnQuality:
    """Data quality of one column of the current window, against the reference: the share
    of missing values, of numbers outside the reference's range, and categories the
    reference never had."""

    column: str
    missing_share: float
    out_of_range_share: float = 0.0
    new_categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QualityReport:
    rows: int
    columns: tuple[ColumnQuality, ...]


@runtime_checkable
class Monitor(Protocol):
    """Frames are the tool's native frame, or a mapping of column name to values."""

    def drift(
        self,
        reference: object,
        current: object,
        *,
        columns: Sequence[ColumnPolicy],
        prediction_column: str | None = None,
        html_path: Path | None = None,
    ) -> DriftReport:
        """Drift of each policy column (and `prediction_column`) from `reference` to `current`.

        Raises StackError naming the column when a frame lacks it, or when the reference has
        no value in it (all missing): no test can measure drift against nothing, and a NaN
        score must not read as "no drift"."""
        ...

    def quality(
        self, reference: object, current: object, *, columns: Sequence[str]
    ) -> QualityReport:
        """Missing values, out-of-range numbers and new categories of `columns`."""
        ...

    def performance(
        self,
        frame: object,
        *,
        task: TaskKind,
        target: str,
        prediction: str,
        min_labelled_rows: int = 30,
    ) -> PerformanceReport: ...
