"""A monitoring check's findings as a textfile collector's file: verdict, drift per feature,
performance and label coverage, read back with prometheus_client's own parser."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from stack.contract.monitoring import ColumnDrift, DriftReport, PerformanceReport
from stack.monitoring.results import CheckResult
from stack.observability.checks import MONITOR_METRICS, textfile_path, write_textfile

WINDOW = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))


def _samples(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


def test_a_breached_check_is_written_for_the_textfile_collector(tmp_path: Path) -> None:
    breached = CheckResult(
        "churn/v1",
        "churn@2",
        "churn",
        WINDOW,
        rows=400,
        status="breach",
        breaches=["tenure drifted", "accuracy 0.61 < 0.7"],
        drift=DriftReport(
            (
                ColumnDrift("tenure", "psi", 0.42, 0.2, True),
                ColumnDrift("monthly_spend", "psi", 0.05, 0.2, False),
            )
        ),
        performance=PerformanceReport(
            {"accuracy": 0.61}, rows=400, labelled_rows=100, sufficient=True
        ),
    )
    calm = CheckResult("churn/v1", "churn@1", "churn", WINDOW, rows=0, status="empty")
    path = write_textfile(tmp_path / "collector", "churn/v1", [breached, calm], now=1_700_000_000)

    assert path == textfile_path(tmp_path / "collector", "churn/v1")
    assert path.name == "mlstack_monitor_churn_v1.prom"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left
    samples = _samples(path)
    two = {("model", "churn/v1"), ("version", "churn@2"), ("endpoint", "churn")}
    one = {("model", "churn/v1"), ("version", "churn@1"), ("endpoint", "churn")}

    def value(name: str, labels: set[tuple[str, str]], **extra: str) -> float:
        return samples[name, frozenset(labels | set(extra.items()))]

    assert value("mlstack_monitor_breached", two) == 1
    assert value("mlstack_monitor_breached", one) == 0
    assert value("mlstack_monitor_check_status", two, status="breach") == 1
    assert value("mlstack_monitor_check_status", two, status="ok") == 0
    assert value("mlstack_monitor_check_status", one, status="empty") == 1
    assert value("mlstack_monitor_breaches", two) == 2
    assert value("mlstack_monitor_window_rows", two) == 400
    assert value("mlstack_monitor_check_timestamp_seconds", one) == 1_700_000_000
    assert value("mlstack_monitor_drift_score", two, feature="tenure", method="psi") == 0.42
    assert value("mlstack_monitor_feature_drifted", two, feature="tenure", method="psi") == 1
    assert value("mlstack_monitor_feature_drifted", two, feature="monthly_spend", method="psi") == 0
    assert value("mlstack_monitor_drifted_features_ratio", two) == 0.5
    assert value("mlstack_monitor_performance", two, metric="accuracy") == 0.61
    assert value("mlstack_monitor_label_coverage_ratio", two) == 0.25
    assert {name for name, _ in samples} == set(MONITOR_METRICS)


def test_a_new_check_replaces_the_models_file(tmp_path: Path) -> None:
    first = CheckResult("churn", "churn@1", "churn", WINDOW, rows=5, status="breach")
    write_textfile(tmp_path, "churn", [first], now=1.0)
    second = CheckResult("churn", "churn@1", "churn", WINDOW, rows=9, status="ok")
    path = write_textfile(tmp_path, "churn", [second], now=2.0)
    labels = frozenset({("model", "churn"), ("version", "churn@1"), ("endpoint", "churn")})
    assert _samples(path)["mlstack_monitor_breached", labels] == 0
    assert _samples(path)["mlstack_monitor_window_rows", labels] == 9
