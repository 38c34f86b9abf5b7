"""A check's HTML drift report: where it is written, and its logging to the tracker."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from stack.contract.roles import Role
from stack.contract.tracking import RunStatus
from stack.monitoring.results import CheckResult
from stack.session import StackSession


def log_report(session: StackSession, result: CheckResult, path: Path) -> str:
    """The HTML report, logged to the tracker with the check's figures (its own run in
    the `monitoring-<model>` experiment); the local path when there is no tracker."""
    if not session.has(Role.TRACKER):
        return str(path)
    tracker = session.tracker
    run = tracker.start_run(
        f"monitoring-{result.model}",
        name=f"{result.version} {result.window[1]:%Y-%m-%d %H:%M}",
        tags={"mlstack.model_version": result.version, "mlstack.endpoint": result.endpoint},
    )
    figures: dict[str, float] = {"rows": float(result.rows)}
    if result.drift is not None:
        figures["drifted_share"] = result.drift.drifted_share
    if result.performance is not None:
        figures["label_coverage"] = result.performance.label_coverage
        figures.update({k: float(v) for k, v in result.performance.metrics.items()})
    tracker.log_metrics(run, figures)
    uri = tracker.log_artifact(run, path, artifact_path="monitoring")
    tracker.finish_run(run, RunStatus.FINISHED)
    return uri


def html_path(session: StackSession, model: str, version: str, end: datetime) -> Path:
    """Where the report of `version` (`model@N`) for the window ending at `end` is written."""
    name = f"{version.replace('@', '-v')}-{end:%Y%m%dT%H%M%S}.html"
    return session.home / "monitoring" / "reports" / model / name
