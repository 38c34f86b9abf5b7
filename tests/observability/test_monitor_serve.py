"""`mlstack monitor serve`: the latest checks in the spine exported on /metrics, equal to what
the spine holds, scraped by Debian's Prometheus; a version the latest run no longer checked
drops out, as it does from a textfile the run rewrote."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack.config.monitoring import MonitoringSection
from stack.contract.monitoring import ColumnDrift, DriftReport, PerformanceReport
from stack.monitoring.recording import CheckRecorder
from stack.monitoring.results import CheckResult
from stack.session import StackSession
from tests.support.ports import free_port
from tests.support.prometheus import Running, _serve, prometheus, wait_for

FIRST = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
SECOND = (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _stack(folder: Path) -> Path:
    (folder / "stack.yaml").write_text(
        f"name: exporter-test\nhome: {folder / '.mlstack'}\n"
        f'spine: {{url: "sqlite:///{folder / "spine.db"}"}}\n'
    )
    return folder / "stack.yaml"


def _breach(window: tuple[datetime, datetime]) -> CheckResult:
    return CheckResult(
        "churn",
        "churn@2",
        "churn",
        window,
        rows=400,
        status="breach",
        breaches=["tenure drifted"],
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


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[tuple[Running, Path]]:
    """Two runs of checks recorded (the first also checked churn@1), and `mlstack monitor
    serve` on 127.0.0.1 over that spine."""
    path = _stack(tmp_path)
    with StackSession.open(path, base_dir=tmp_path) as session:
        recorder = CheckRecorder(session)
        for check in (
            CheckResult("churn", "churn@1", "churn", FIRST, rows=50, status="ok"),
            CheckResult("churn", "churn@2", "churn", FIRST, rows=50, status="ok"),
            _breach(SECOND),
            CheckResult("fraud", "fraud@1", "fraud", SECOND, rows=0, status="empty"),
        ):
            recorder.record(check, MonitoringSection())
    port = free_port()
    mlstack = str(Path(sys.executable).parent / "mlstack")
    command = [mlstack, "--stack", str(path), "monitor", "serve", "--port", str(port)]
    with _serve(command, f"http://127.0.0.1:{port}", "/healthz", tmp_path / "serve.log") as up:
        yield up, path


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_exported_values_are_the_spines(exporter: tuple[Running, Path]) -> None:
    running, path = exporter
    response = httpx.get(f"{running.url}/metrics", timeout=10)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(response.text)
    with StackSession.open(path, base_dir=path.parent) as session:
        latest = session.spine.latest_checks()
    assert [(c.model, c.version) for c in latest] == [("churn", "churn@2"), ("fraud", "fraud@1")]
    for check in latest:
        labels = {("model", check.model), ("version", check.version), ("endpoint", check.endpoint)}

        def value(name: str, **extra: str) -> float:
            return samples[name, frozenset(labels | set(extra.items()))]  # noqa: B023

        assert value("mlstack_monitor_check_status", status=check.status) == 1
        assert value("mlstack_monitor_breached") == (check.status == "breach")
        assert value("mlstack_monitor_breaches") == len(check.result["breaches"])
        assert value("mlstack_monitor_window_rows") == check.result["rows"]
        assert value("mlstack_monitor_check_timestamp_seconds") == check.at.timestamp()
        for column in (check.result["drift"] or {}).get("columns", []):
            named = {"feature": column["column"], "method": column["method"]}
            assert value("mlstack_monitor_drift_score", **named) == column["score"]
            assert value("mlstack_monitor_feature_drifted", **named) == column["drifted"]
        if check.result["performance"] is not None:
            performance = check.result["performance"]
            assert value("mlstack_monitor_performance", metric="accuracy") == 0.61
            assert value("mlstack_monitor_label_coverage_ratio") == performance["label_coverage"]
    two = frozenset({("model", "churn"), ("version", "churn@2"), ("endpoint", "churn")})
    assert samples["mlstack_monitor_drift_score", two | {("feature", "tenure"), ("method", "psi")}]
    assert not any(("version", "churn@1") in labels for _, labels in samples)  # not rechecked


def test_prometheus_scrapes_the_exporter(exporter: tuple[Running, Path], tmp_path: Path) -> None:
    running, _ = exporter
    target = running.url.removeprefix("http://")
    with prometheus(tmp_path / "prometheus", [target]) as server:
        [found] = wait_for(
            "the breach in Prometheus",
            lambda: server.query('mlstack_monitor_breached{model="churn"}'),
            60,
            server.log,
        )
        assert found["metric"]["version"] == "churn@2"
        assert float(found["value"][1]) == 1
        [score] = server.query('mlstack_monitor_drift_score{feature="tenure"}')
        assert float(score["value"][1]) == 0.42


def test_a_port_taken_is_said(tmp_path: Path) -> None:
    import socket

    from tests.support.cli import cli_in

    with StackSession.open(_stack(tmp_path), base_dir=tmp_path) as session:
        assert session.spine is not None  # the spine exists: the port is what is refused
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli_in(tmp_path)("monitor", "serve", "--port", str(port))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_spine_that_does_not_exist_is_refused_never_created(
    tmp_path: Path, spine_url: str
) -> None:
    from sqlalchemy import create_engine, inspect

    from tests.support.cli import cli_in

    _stack(tmp_path)
    if not spine_url.startswith("sqlite"):  # an empty PostgreSQL database: no spine in it
        (tmp_path / "stack.yaml").write_text(
            f"name: exporter-test\nhome: {tmp_path / '.mlstack'}\nspine: {{url: '{spine_url}'}}\n"
        )
    done = cli_in(tmp_path)("monitor", "serve", "--port", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no spine at " in done.stderr
    if spine_url.startswith("sqlite"):
        assert f"no spine at {tmp_path / 'spine.db'}" in done.stderr
        assert not (tmp_path / "spine.db").exists()
    else:
        engine = create_engine(spine_url)
        try:
            assert inspect(engine).get_table_names() == []  # nothing created
        finally:
            engine.dispose()
