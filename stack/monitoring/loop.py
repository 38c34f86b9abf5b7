"""One monitoring check of a model: the endpoint's window of logged answers, per version that
answered, against that version's training reference; late labels joined; the recipe's policy
applied; the result stored in the spine and linked to the version; alerts and retraining on a
breach. Nothing a window holds (a renamed column, no rows, no labels, a value of the wrong
kind) stops the loop: it becomes a message in the check's result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stack.config.monitoring import MonitoringSection
from stack.config.recipe_file import Recipe
from stack.contract.monitoring import (
    ColumnPolicy,
    ColumnQuality,
    DriftReport,
    PerformanceReport,
    QualityReport,
)
from stack.contract.registry import ModelSelector, ModelVersion
from stack.contract.roles import Role
from stack.contract.serving import (
    Endpoint,
    LoggedRequest,
    PredictionLogReader,
    ProcessInspector,
)
from stack.contract.states import LifecycleState
from stack.contract.tracking import RunStatus
from stack.errors import StackError
from stack.identity import current_actor
from stack.monitoring import alerts, policy
from stack.monitoring.batch import BatchPredictionLog, batch_root
from stack.monitoring.columns import plan_columns, prediction_labels, prediction_scores
from stack.monitoring.known import require_model
from stack.monitoring.reference import Columns, load_reference
from stack.monitoring.retrain import RetrainOutcome, maybe_retrain
from stack.monitoring.window import (
    ANSWERED,
    JoinStats,
    VersionWindow,
    feedback_labels,
    join_labels,
    split_by_version,
)
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef
from stack.spine.timeutil import now_utc


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


class MonitoringLoop:
    """Checks for one session; references stay loaded (and profiled by the monitor) from one
    check to the next, so a loop that checks every few minutes pays for them once."""

    def __init__(self, session: StackSession) -> None:
        """The policy is the session's recipe's, else that of the recipe that built the
        model's serving (else newest) version."""
        self.session = session
        self._references: dict[str, Columns] = {}

    def check(
        self,
        model: str,
        *,
        endpoint: str | None = None,
        until: datetime | None = None,
        window: timedelta | None = None,
    ) -> MonitoringOutcome:
        """Assess the window, then roll back and retrain if the policy asks for it."""
        outcome = self.assess(model, endpoint=endpoint, until=until, window=window)
        outcome.rolled_back = self.roll_back(outcome)
        outcome.retrain = self.retrain(outcome)
        return outcome

    def assess(
        self,
        model: str,
        *,
        endpoint: str | None = None,
        until: datetime | None = None,
        window: timedelta | None = None,
    ) -> MonitoringOutcome:
        """Check each version that answered on the endpoint in the window (`until` minus
        `window`, the recipe's by default) and still answers there (a version rolled back
        or replaced is history, not news), record the results, alert on breaches."""
        recipe = self._recipe_of(model)
        section = recipe.spec.monitoring if recipe is not None else MonitoringSection()
        if section.source != "traces":  # an LLM app's traces need no registered model
            require_model(self.session, model)
        name = endpoint or section.endpoint or model
        end = until or now_utc()
        start = end - (window or section.window)
        if section.source == "traces":
            return self._assess_traces(model, recipe, section, (start, end))
        source = self._source(section)
        logged = source.logged(name, since=start)
        windows = split_by_version(logged, end, section.include_traffic)
        if section.source == "endpoint":  # versions taken off it are history, not alerts
            routed = self._routed_versions(name)
            if routed is not None:
                windows = {ref: w for ref, w in windows.items() if ref in routed}
        labels = self.session.spine.labels(model, since=start) + feedback_labels(logged, model)
        stats = join_labels(
            windows,
            labels,
            entity=section.labels.entity,
            join_window=section.labels.join_window,
        )
        checks: list[CheckResult] = []
        if not windows:
            empty = CheckResult(model, "-", name, (start, end), rows=0, status="empty")
            empty.messages.append(
                f"no answered requests on endpoint {name!r} between "
                f"{start:%Y-%m-%d %H:%M:%S} and {end:%Y-%m-%d %H:%M:%S} UTC"
                + _left_out(logged, section.include_traffic)
            )
            checks.append(empty)
        for _, version_window in sorted(windows.items()):
            result = self._check_version(section, model, name, version_window, (start, end))
            result.labels = stats
            checks.append(result)
        if section.source == "endpoint":
            self._alert_log_outage(model, name, section, checks)
        for result in checks:
            self._record(result, section)
        return MonitoringOutcome(checks, model=model, recipe=recipe, section=section, until=end)

    def _alert_log_outage(
        self, model: str, endpoint: str, section: MonitoringSection, checks: list[CheckResult]
    ) -> None:
        """The endpoint's prediction log refusing rows (they wait to be replayed, so the
        window lacks them): said in each check and alerted (log line, webhook), not a breach."""
        degraded = self._degraded(endpoint)
        if not degraded:
            return
        for result in checks:
            result.messages.extend(
                f"{reason} (this window lacks those rows until they are replayed)"
                for reason in degraded
            )
        alert = {"kind": "prediction_log", "model": model, "version": "-"}
        error = alerts.send_alert(
            section.alerts, {**alert, "endpoint": endpoint, "breaches": degraded}
        )
        for result in checks:
            result.alert_error = error

    def _degraded(self, endpoint: str) -> list[str]:
        """Why the endpoint answers but is not whole, when its server can tell."""
        if not self.session.has(Role.SERVER):
            return []
        server = self.session.server
        if not isinstance(server, ProcessInspector):
            return []
        try:
            return [reason for found in server.processes(endpoint) for reason in found.degraded]
        except StackError:  # no such endpoint here (a batch name, a remote server)
            return []

    def answered_request_ids(
        self, model: str, *, endpoint: str | None = None
    ) -> tuple[str, set[str]]:
        """The endpoint (or batch) read (`endpoint`, else the recipe's, else the model's name)
        and the id of every request answered there, all time: what late labels can join to.
        Raises StackError when the model is unknown or its log cannot be read."""
        require_model(self.session, model)
        recipe = self._recipe_of(model)
        section = recipe.spec.monitoring if recipe is not None else MonitoringSection()
        if section.source == "traces":
            raise StackError(f"{model} is monitored from traces, which labels do not join")
        name = endpoint or section.endpoint or model
        logged = self._source(section).logged(name)
        return name, {r.request_id for r in logged if r.role in ANSWERED and r.status == 200}

    def _assess_traces(
        self,
        model: str,
        recipe: Recipe | None,
        section: MonitoringSection,
        span: tuple[datetime, datetime],
    ) -> MonitoringOutcome:
        """Online evaluation of an LLM app: its traces in the window, by the version that
        answered them (a canary's apart from the serving one's), each sample scored and held
        to the floors; each check recorded like any other (its scores as the performance)."""
        from stack.llm.online import by_version, example_reader, score_traces, scorers_for, tracer

        check = section.traces
        if check is None:
            raise StackError("monitoring `source: traces` needs a `traces:` section")
        source = tracer(self.session, check.experiment)
        found = source.traces(since=span[0], limit=check.sample * 20)
        groups = by_version([t for t in found if t.started_at <= span[1]], default=model)
        routed = self._routed_versions(section.endpoint or model)
        if routed is not None:  # versions taken off the endpoint are history, not alerts
            groups = {ref: g for ref, g in groups.items() if ref == model or ref in routed}
        scorers = scorers_for(self.session, check.scorers)
        checks: list[CheckResult] = []
        for ref, traces in sorted(groups.items()):
            online = score_traces(
                source,
                traces,
                scorers,
                example_reader(check),
                sample=check.sample,
                min_scores=check.min_scores,
            )
            result = CheckResult(model, ref, check.experiment, span, rows=online.traces)
            result.performance = PerformanceReport(
                online.scores, online.traces, online.traces, sufficient=online.traces > 0
            )
            result.messages += online.failures
            result.breaches = online.breaches
            result.status = "breach" if online.breaches else "ok"
            checks.append(result)
        if not checks:
            empty = CheckResult(model, model, check.experiment, span, rows=0, status="empty")
            empty.messages.append(f"no traces in experiment {check.experiment!r} in the window")
            checks.append(empty)
        for result in checks:
            self._record(result, section)
        return MonitoringOutcome(checks, model=model, recipe=recipe, section=section, until=span[1])

    def roll_back(self, outcome: MonitoringOutcome) -> list[str]:
        """Each breached version that is rolling out beside the serving one, rolled back
        (when the recipe's `rollback` policy asks); what was done, as lines to show."""
        if not outcome.section.rollback.enabled or not outcome.breached:
            return []
        from stack.rollout.controller import RolloutController

        controller = RolloutController(self._session_of(outcome.recipe))
        name = outcome.section.endpoint or outcome.model
        done: list[str] = []
        for check in outcome.checks:
            if check.status != "breach" or check.version not in controller.challengers(name):
                continue
            why = f"monitoring: {'; '.join(check.breaches)}"
            result = controller.rollback(
                outcome.model, endpoint=name, challenger=check.version, reason=why
            )
            weights = result.endpoint.split.weights
            serves = max(weights, key=lambda ref: weights[ref])
            done.append(f"{check.version} rolled back on {name}; {serves} serves ({why})")
        return done

    def _routed_versions(self, endpoint: str) -> set[str] | None:
        if not self.session.has(Role.SERVER):
            return None
        return _routed(self.session.server.endpoints(), endpoint)

    def retrain(self, outcome: MonitoringOutcome) -> RetrainOutcome | None:
        """The retraining a breached assessment calls for (None when the policy asks none)."""
        breached = [c for c in outcome.checks if c.status == "breach"]
        recipe = _retraining_recipe(outcome.recipe, outcome.section)
        return maybe_retrain(
            self._session_of(recipe),
            model=outcome.model,
            policy=outcome.section.retrain,
            breaches=[b for c in breached for b in c.breaches],
            now=outcome.until,
        )

    # -- one version --------------------------------------------------------------------

    def _check_version(
        self,
        section: MonitoringSection,
        model: str,
        endpoint: str,
        window: VersionWindow,
        span: tuple[datetime, datetime],
    ) -> CheckResult:
        result = CheckResult(model, window.version, endpoint, span, rows=window.rows)
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
        html = self._html_path(model, window.version, span[1])
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
            result.report_uri = self._log_report(result, report)
        return result

    # -- recording, alerting ------------------------------------------------------------

    def _record(self, result: CheckResult, section: MonitoringSection) -> None:
        spine = self.session.spine
        result.id = spine.record_check(
            model=result.model,
            version=result.version,
            endpoint=result.endpoint,
            window=result.window,
            status=result.status,
            result=result.as_record(),
            report_uri=result.report_uri,
        )
        if result.version != "-":
            report = NodeRef(NodeKind.REPORT, f"monitoring/{result.id}")
            spine.link(
                NodeRef(NodeKind.MODEL_VERSION, result.version),
                report,
                "monitored_by",
                attributes={
                    report: {
                        "status": result.status,
                        "endpoint": result.endpoint,
                        "window_end": result.window[1].isoformat(),
                        "report": result.report_uri,
                    }
                },
            )
        if result.status != "breach":
            return
        alert = {"check": result.id, **result.as_record()}
        result.alert_error = alerts.send_alert(section.alerts, alert)
        spine.audit(
            actor=current_actor(),
            action="monitoring.breached",
            subject=result.version,
            reason="; ".join(result.breaches),
            payload={"check": result.id, "endpoint": result.endpoint},
        )
        self.session.emit(
            "on_drift_detected", subject=result.model, model=result.model, report=result.drift
        )

    def _log_report(self, result: CheckResult, path: Path) -> str:
        """The HTML report, logged to the tracker with the check's figures (its own run in
        the `monitoring-<model>` experiment); the local path when there is no tracker."""
        if not self.session.has(Role.TRACKER):
            return str(path)
        tracker = self.session.tracker
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

    # -- lookups ------------------------------------------------------------------------

    def _source(self, section: MonitoringSection) -> PredictionLogReader:
        if section.source == "batch":
            return BatchPredictionLog(batch_root(self.session))
        server = self.session.server
        if not isinstance(server, PredictionLogReader):
            raise StackError(
                f"the server adapter {self.session.resolved[Role.SERVER].adapter!r} cannot "
                "read its prediction log, so there is nothing to monitor"
            )
        return server

    @staticmethod
    def _guard(result: CheckResult, what: str, call: Any) -> Any:
        try:
            return call()
        except Exception as exc:  # a bad window is a message, never the loop's end
            result.failed = True
            result.messages.append(f"check failed ({what}): {type(exc).__name__}: {exc}")
            return None

    def _html_path(self, model: str, version: str, end: datetime) -> Path:
        name = f"{version.replace('@', '-v')}-{end:%Y%m%dT%H%M%S}.html"
        return self.session.home / "monitoring" / "reports" / model / name

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

    def _recipe_of(self, model: str) -> Recipe | None:
        """The session's recipe, else the one that built the model's serving (else newest)
        version, its hooks registered: they hear of drift and may veto retraining."""
        if self.session.recipe is not None:
            return self.session.recipe
        serving = self.session.registry.find_by_state(model, LifecycleState.SERVING)
        versions = serving or self.session.registry.versions(model)[-1:]
        found = self.session.recipe_for(versions[0], required=False) if versions else None
        self._session_of(found)  # shares the hook bus: registers the recipe's hooks there
        return found

    def _session_of(self, recipe: Recipe | None) -> StackSession:
        """The session owning `recipe` (the one the assessment applied)."""
        if recipe is None or recipe is self.session.recipe:
            return self.session
        return self.session.with_recipe(recipe)


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


def _routed(endpoints: list[Endpoint], name: str) -> set[str] | None:
    """The versions that answer (or shadow) on the endpoint now; None when it is not up."""
    endpoint = next((e for e in endpoints if e.name == name), None)
    if endpoint is None:
        return None
    live = {ref for ref, weight in endpoint.split.weights.items() if weight > 0}
    return live | set(endpoint.split.shadows)


def _retraining_recipe(recipe: Recipe | None, section: MonitoringSection) -> Recipe | None:
    """The recipe `retrain.recipe` names (relative to the monitored recipe), or that one."""
    if recipe is None or section.retrain.recipe is None:
        return recipe
    from stack.config.recipe_file import load_recipe

    return load_recipe(recipe.directory / section.retrain.recipe)


def _left_out(logged: list[LoggedRequest], kept: tuple[str, ...]) -> str:
    """Why a window may be empty although requests were answered: their traffic tags."""
    others: dict[str, int] = {}
    for request in logged:
        if request.role in ANSWERED and request.traffic not in kept:
            others[request.traffic] = others.get(request.traffic, 0) + 1
    if not others:
        return ""
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(others.items()))
    return f" ({counts} left out: monitoring.include_traffic keeps {', '.join(kept)})"
