"""A monitoring check's findings as Prometheus metrics, in the text format a node_exporter
textfile collector reads: no pushgateway, so it works as well from a CronJob as from a
long-running `mlstack monitor run --every`.

`mlstack monitor run MODEL --textfile-dir DIR` writes `DIR/mlstack_monitor_<model>.prom`
after each check, atomically (written beside, then renamed), one file per model so that
each model's CronJob owns its own. Every series is labelled `model`, `version`, `endpoint`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stack.atomic import write_atomic

if TYPE_CHECKING:
    from stack.monitoring.results import CheckResult

STATUSES = ("ok", "breach", "empty", "error")
LABELS = ("model", "version", "endpoint")

#: every metric a check exports: name -> (type, help); dashboards and rules name only these
MONITOR_METRICS: dict[str, tuple[str, str]] = {
    "mlstack_monitor_check_status": (
        "gauge",
        "1 for the latest check's status (ok, breach, empty, error), 0 for the others.",
    ),
    "mlstack_monitor_breached": ("gauge", "1 when the latest check breached the policy."),
    "mlstack_monitor_breaches": ("gauge", "How many of the policy's limits the check breached."),
    "mlstack_monitor_check_timestamp_seconds": (
        "gauge",
        "When the latest check ran (unix seconds): a CronJob that stopped shows here.",
    ),
    "mlstack_monitor_window_rows": ("gauge", "Logged answers in the checked window."),
    "mlstack_monitor_drift_score": (
        "gauge",
        "Each feature's drift score against the training reference (its method's statistic).",
    ),
    "mlstack_monitor_feature_drifted": (
        "gauge",
        "1 when the feature's drift score crossed its method's threshold.",
    ),
    "mlstack_monitor_drifted_features_ratio": (
        "gauge",
        "Share of the checked features that drifted (0 to 1).",
    ),
    "mlstack_monitor_performance": (
        "gauge",
        "A performance metric over the window's labelled rows, by metric name.",
    ),
    "mlstack_monitor_label_coverage_ratio": (
        "gauge",
        "Share of the window's answers with a label joined (0 to 1).",
    ),
}


def check_metrics(checks: Iterable[CheckResult], *, now: float) -> bytes:
    """`checks` (one per version) in Prometheus' text format; `now` in unix seconds."""
    return record_metrics((check.as_record(), now) for check in checks)


def record_metrics(records: Iterable[tuple[Mapping[str, Any], float]]) -> bytes:
    """Checks as the spine keeps them (`CheckResult.as_record()`: model, version, endpoint,
    status, rows, breaches, drift, performance), each with when it ran (unix seconds), in
    Prometheus' text format."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    gauges: dict[str, Any] = {}

    def gauge(name: str, *extra: str) -> Any:
        if name not in gauges:
            text = MONITOR_METRICS[name][1]
            gauges[name] = Gauge(name, text, (*LABELS, *extra), registry=registry)
        return gauges[name]

    for record, ran in records:
        labels = (record["model"], record["version"], record["endpoint"])
        status = record["status"]
        for each in STATUSES:
            gauge("mlstack_monitor_check_status", "status").labels(*labels, each).set(
                1 if status == each else 0
            )
        gauge("mlstack_monitor_breached").labels(*labels).set(status == "breach")
        gauge("mlstack_monitor_breaches").labels(*labels).set(len(record.get("breaches") or ()))
        gauge("mlstack_monitor_check_timestamp_seconds").labels(*labels).set(ran)
        gauge("mlstack_monitor_window_rows").labels(*labels).set(record.get("rows") or 0)
        drift = record.get("drift")
        if drift is not None:
            for column in drift["columns"]:
                named = (*labels, column["column"], column["method"])
                gauge("mlstack_monitor_drift_score", "feature", "method").labels(*named).set(
                    column["score"]
                )
                gauge("mlstack_monitor_feature_drifted", "feature", "method").labels(*named).set(
                    column["drifted"]
                )
            gauge("mlstack_monitor_drifted_features_ratio").labels(*labels).set(
                drift["drifted_share"]
            )
        performance = record.get("performance")
        if performance is not None:
            for metric, value in performance["metrics"].items():
                gauge("mlstack_monitor_performance", "metric").labels(*labels, metric).set(value)
            gauge("mlstack_monitor_label_coverage_ratio").labels(*labels).set(
                performance["label_coverage"]
            )
    return generate_latest(registry)


def textfile_path(directory: Path, model: str) -> Path:
    """`directory/mlstack_monitor_<model>.prom` (the model's name made a safe file name)."""
    return directory / f"mlstack_monitor_{re.sub(r'[^A-Za-z0-9_.-]', '_', model)}.prom"


def write_textfile(directory: Path, model: str, checks: Iterable[CheckResult], now: float) -> Path:
    """Write `model`'s checks for a textfile collector, atomically; returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = textfile_path(directory, model)
    write_atomic(path, check_metrics(checks, now=now))  # the collector reads *.prom only
    return path
