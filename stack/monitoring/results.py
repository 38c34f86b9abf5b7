"""What one monitoring check found (per version) and what a check of a model did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stack.config.monitoring import MonitoringSection
from stack.config.recipe_file import Recipe
from stack.contract.monitoring import DriftReport, PerformanceReport, QualityReport
from stack.monitoring.retrain import RetrainOutcome
from stack.monitoring.window import JoinStats


@dataclass
class CheckResult:
    model: str
    version: str
    endpoint: str
    window: tuple[datetime, datetime]
    rows: int
    status: str = "ok"  # ok | breach | empty | error
    messages: list[str] = field(default_factory=list)
    drift: DriftReport | None = None
    quality: QualityReport | None = None
    performance: PerformanceReport | None = None
    baseline: dict[str, float] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)
    labels: JoinStats | None = None
    report_uri: str | None = None
    alert_error: str | None = None
    id: int | None = None
    failed: bool = False  # a statistic raised (its message says which)

    def as_record(self) -> dict[str, Any]:
        """What the spine keeps of the check (and a webhook receives)."""
        drift = self.drift
        performance = self.performance
        return {
            "model": self.model,
            "version": self.version,
            "endpoint": self.endpoint,
            "window": [self.window[0].isoformat(), self.window[1].isoformat()],
            "rows": self.rows,
            "status": self.status,
            "messages": self.messages,
            "breaches": self.breaches,
            "drift": None
            if drift is None
            else {
                "drifted_share": drift.drifted_share,
                "columns": [vars_of(c) for c in drift.columns],
                "prediction": None if drift.prediction is None else vars_of(drift.prediction),
            },
            "quality": None
            if self.quality is None
            else {"columns": [vars_of(c) for c in self.quality.columns]},
            "performance": None
            if performance is None
            else {
                "metrics": dict(performance.metrics),
                "rows": performance.rows,
                "labelled_rows": performance.labelled_rows,
                "label_coverage": performance.label_coverage,
                "sufficient": performance.sufficient,
                "notes": list(performance.notes),
            },
            "baseline": self.baseline,
            "labels": None
            if self.labels is None
            else {"received": self.labels.labels, "matched": self.labels.matched},
            "report": self.report_uri,
        }


@dataclass
class MonitoringOutcome:
    checks: list[CheckResult]
    model: str
    recipe: Recipe | None
    section: MonitoringSection
    until: datetime
    retrain: RetrainOutcome | None = None
    rolled_back: list[str] = field(default_factory=list)

    @property
    def breached(self) -> bool:
        return any(c.status == "breach" for c in self.checks)


def vars_of(item: object) -> dict[str, Any]:
    names = getattr(item, "__slots__", ())
    return {name: getattr(item, name) for name in names}
