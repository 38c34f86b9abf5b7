"""One version's window against its training reference: drift, data quality and
performance judged by the recipe's policy; whatever a window holds becomes a message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from stack.config.monitoring import MonitoringSection
from stack.contract.monitoring import ColumnPolicy, ColumnQuality, DriftReport, QualityReport
from stack.contract.registry import ModelSelector, ModelVersion
from stack.contract.roles import Role
from stack.errors import StackError
from stack.monitoring import policy
from stack.monitoring.columns import plan_columns, prediction_labels, prediction_scores
from stack.monitoring.reference import Columns, load_reference
from stack.monitoring.reports import html_path, log_report
from stack.monitoring.results import CheckResult
from stack.monitoring.window import VersionWindow
from stack.session import StackSession


class VersionChecker:
    """Checks versions of one session; references stay loaded (and profiled by the monitor)
    from one check to the next, so a loop that checks every few minutes pays for them once."""

    def __init__(self, session: StackSession) -> None:
        self.session = session
        self._references: dict[str, Columns] = {}

    def check(
        self,
        section: MonitoringSection,
        model: str,
        endpoint: str,
        window: VersionWindow,
        span: tuple[datetime, datetime],
    ) -> CheckResult:
        result = CheckResult(model, window.version, endpoint, span, rows=window.rows)
        if window.sampled_rows is not None:
            result.messages.append(
                f"judged on a uniform sample of {window.sampled_rows} of about {window.rows} "
                f"rows ({window.total_rows} requests answered): drift, quality, performance "
                "and the HTML report are Evidently's on that sample"
            )
        monitor = self.session.monitor
        reference: Columns | None = None
        try:
            version = self.session.registry.get_version(
                *_model_and_number(ModelSelector.parse(window.version))
            )
            reference = self._reference(version)
            result.baseline = self._baseline(version)
        except StackError as exc:
            result.messages.append(str(exc))
        current = window.columns(window.input_names())
        prediction = section.prediction_column
        current[prediction] = prediction_scores(window.predictions)
        if reference is not None and prediction in reference:  # the cached one: idempotent
            reference[prediction] = prediction_scores(reference[prediction])
        drift: Callable[[Path | None], DriftReport] | None = None
        html = html_path(self.session, model, window.version, span[1])
        if window.rows < section.min_rows:
            result.messages.append(
                f"only {window.rows} rows in the window (at least {section.min_rows} are "
                "needed): drift and quality not judged"
            )
        elif reference is not None:
            # every reference column, and those the recipe names (a name not in the
            # reference is reported, not silently skipped)
            wanted = [c for c in reference if c != prediction]
            wanted += [c for c in section.columns if c not in reference]
            plan = plan_columns(reference, current, wanted)
            result.messages += plan.problems
            scored = (
                plan_columns(reference, current, [prediction]) if prediction in reference else None
            )
            if scored is not None:
                result.messages += [f"prediction drift not checked: {p}" for p in scored.problems]
            policies = [ColumnPolicy(n, *_overrides(section, n)) for n in plan.usable]
            known: Columns = reference

            def drift_check(html: Path | None) -> DriftReport:
                return monitor.drift(
                    known,
                    current,
                    columns=policies,
                    prediction_column=prediction if scored and scored.usable else None,
                    html_path=html,
                )

            drift = drift_check
            always = section.html_report == "always"
            result.drift = self._guard(
                result, "drift", lambda: drift_check(html if always else None)
            )
            result.quality = self._guard(
                result,
                "data quality",
                lambda: _with_missing(
                    monitor.quality(known, current, columns=plan.usable), plan.missing
                ),
            )
        result.performance = self._guard(
            result,
            "performance",
            lambda: monitor.performance(
                {"target": window.labels, "prediction": prediction_labels(window.predictions)},
                task=section.task,
                target="target",
                prediction="prediction",
                min_labelled_rows=section.labels.min_labelled_rows,
            ),
        )
        rule = section.policy.performance
        if rule is not None and result.baseline and rule.metric not in result.baseline:
            result.messages.append(
                f"the training run logged no {rule.metric!r}: performance drop not judged"
            )
        result.breaches = policy.breaches(
            section.policy,
            drift=result.drift,
            quality=result.quality,
            performance=result.performance,
            baseline=result.baseline,
        )
        if result.breaches:
            result.status = "breach"
        elif window.rows == 0:
            result.status = "empty"
        elif result.failed or reference is None:
            result.status = "error"
        report = result.drift.html_path if result.drift is not None else None
        on_breach = section.html_report == "on_breach" and result.breaches
        if report is None and on_breach and drift is not None:
            again = self._guard(result, "HTML report", lambda: drift(html))
            report = again.html_path if again is not None else None
        if report is not None:
            result.report_uri = log_report(self.session, result, report)
        return result

    @staticmethod
    def _guard(result: CheckResult, what: str, call: Any) -> Any:
        try:
            return call()
        except Exception as exc:  # a bad window is a message, never the loop's end
            result.failed = True
            result.messages.append(f"check failed ({what}): {type(exc).__name__}: {exc}")
            return None

    def _reference(self, version: ModelVersion) -> Columns:
        key = version.run_id or version.ref
        if key not in self._references:
            self._references[key] = load_reference(self.session, version)
        return self._references[key]

    def _baseline(self, version: ModelVersion) -> dict[str, float]:
        if not version.run_id or not self.session.has(Role.TRACKER):
            return {}
        return {
            k: float(v) for k, v in self.session.tracker.get_run(version.run_id).metrics.items()
        }


def _with_missing(report: QualityReport, missing: dict[str, float]) -> QualityReport:
    """The monitor's report plus the columns it could not measure (no value in the window or
    in the reference), with their missing share, so the missing-share rule sees them."""
    extra = tuple(ColumnQuality(name, share) for name, share in missing.items())
    return QualityReport(report.rows, report.columns + extra)


def _model_and_number(selector: ModelSelector) -> tuple[str, int]:
    """The log names versions as `model@number`; a state there would be a corrupt log."""
    if selector.version is None:
        raise StackError(f"the log names {selector}, which is not a version number")
    return selector.model, selector.version


def _overrides(section: MonitoringSection, column: str) -> tuple[str | None, float | None]:
    check = section.columns.get(column)
    return (check.method, check.threshold) if check is not None else (None, None)
