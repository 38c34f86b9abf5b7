"""One monitoring check of a model: the endpoint's window of logged answers, per version that
answered, against that version's training reference; late labels joined; the recipe's policy
applied; the result stored in the spine and linked to the version; alerts and retraining on a
breach. Nothing a window holds (a renamed column, no rows, no labels, a value of the wrong
kind) stops the loop: it becomes a message in the check's result."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import cast

from stack.config.monitoring import MonitoringSection
from stack.config.recipe_file import Recipe
from stack.contract.capabilities import ServerCapability
from stack.contract.roles import Role
from stack.contract.serving import Endpoint, LoggedRequest, PredictionLogReader
from stack.contract.states import LifecycleState
from stack.errors import StackError
from stack.monitoring import actions
from stack.monitoring.actions import session_for
from stack.monitoring.batch import BatchPredictionLog, batch_root
from stack.monitoring.known import require_model
from stack.monitoring.recording import CheckRecorder
from stack.monitoring.results import CheckResult, MonitoringOutcome, vars_of
from stack.monitoring.retrain import RetrainOutcome
from stack.monitoring.stream import PredictionLogScanner, StreamedWindow, stream_window
from stack.monitoring.traces import assess_traces
from stack.monitoring.versions import VersionChecker
from stack.monitoring.window import (
    ANSWERED,
    JoinStats,
    feedback_labels,
    join_labels,
    label_key,
    split_by_version,
)
from stack.plugins.capabilities import declares
from stack.session import StackSession
from stack.spine.records import GroundTruth
from stack.spine.timeutil import now_utc

__all__ = ["CheckResult", "MonitoringLoop", "MonitoringOutcome", "vars_of"]


class MonitoringLoop:
    """Checks for one session: each version's window (`versions.py`), LLM traces
    (`traces.py`), results recorded and alerted (`recording.py`), rollback and retraining
    (`actions.py`). References stay loaded from one check to the next."""

    def __init__(self, session: StackSession, recipe: Recipe | None = None) -> None:
        """The policy is the session's recipe's, else that of the recipe that built the
        model's serving (else newest) version (`recipe` is deprecated: passed, the session
        is viewed as owning it)."""
        if recipe is not None:  # a view (a prompt registry's) is kept as it is
            session = session.for_recipe(recipe, "MonitoringLoop")
        self.session = session
        self._versions = VersionChecker(session)
        self._recorder = CheckRecorder(session)

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
            routed = self._routed_versions(section.endpoint or model)
            return assess_traces(
                self.session, self._recorder, model, recipe, section, (start, end), routed
            )
        source = self._source(section)
        spine_labels = self.session.spine.labels(model, since=start)
        streamed: StreamedWindow | None = None
        if isinstance(source, PredictionLogScanner):  # streamed: a sample, counted exactly
            streamed = stream_window(
                source.log_batches(name, since=start),  # feedback after `end` still joins
                end,
                section.include_traffic,
                sample_rows=section.sample_rows,
            )
            windows, logged = streamed.windows, streamed.feedback
            left_out = _left_out_counts(streamed.left_out, section.include_traffic)
        else:
            logged = source.logged(name, since=start)
            windows = split_by_version(logged, end, section.include_traffic)
            left_out = _left_out(logged, section.include_traffic)
        routed = None
        if section.source == "endpoint":  # versions taken off it are history, not alerts
            routed = self._routed_versions(name)
            if routed is not None:
                windows = {ref: w for ref, w in windows.items() if ref in routed}
        labels = spine_labels + feedback_labels(logged, model)
        stats = join_labels(
            windows,
            labels,
            entity=section.labels.entity,
            join_window=section.labels.join_window,
        )
        if streamed is not None and any(w.sampled_rows for w in windows.values()):
            named = {g.request_id for g in labels if g.request_id is not None}
            stats = _sampled_join(stats, labels, streamed.answered(named))
        checks: list[CheckResult] = []
        if not windows:
            empty = CheckResult(model, "-", name, (start, end), rows=0, status="empty")
            empty.messages.append(
                f"no answered requests on endpoint {name!r} between "
                f"{start:%Y-%m-%d %H:%M:%S} and {end:%Y-%m-%d %H:%M:%S} UTC" + left_out
            )
            checks.append(empty)
        for _, version_window in sorted(windows.items()):
            result = self._versions.check(section, model, name, version_window, (start, end))
            result.labels = stats
            checks.append(result)
        if section.source == "endpoint":
            self._recorder.alert_log_outage(model, name, section, checks)
        for result in checks:
            self._recorder.record(result, section)
        if routed is not None:  # an alert for a version taken off the endpoint ends here
            self._recorder.resolve_unserved(model, name, routed, section)
        return MonitoringOutcome(checks, model=model, recipe=recipe, section=section, until=end)

    def answered_among(
        self, model: str, request_ids: Collection[str], *, endpoint: str | None = None
    ) -> tuple[str, set[str]]:
        """The endpoint (or batch) read (`endpoint`, else the recipe's, else the model's name)
        and those of `request_ids` answered there, all time: what late labels can join to.
        The log is asked about these ids only (`PredictionLogReader.answered_among`), never
        read whole. Raises StackError when the model is unknown, is monitored from traces,
        or its log cannot be read."""
        require_model(self.session, model)
        recipe = self._recipe_of(model)
        section = recipe.spec.monitoring if recipe is not None else MonitoringSection()
        if section.source == "traces":
            raise StackError(f"{model} is monitored from traces, which labels do not join")
        name = endpoint or section.endpoint or model
        return name, self._source(section).answered_among(name, request_ids)

    def roll_back(self, outcome: MonitoringOutcome) -> list[str]:
        """Each breached version that is rolling out beside the serving one, rolled back
        (when the recipe's `rollback` policy asks); what was done, as lines to show."""
        return actions.roll_back(self.session, outcome)

    def retrain(self, outcome: MonitoringOutcome) -> RetrainOutcome | None:
        """The retraining a breached assessment calls for (None when the policy asks none)."""
        return actions.retrain(self.session, outcome)

    def _routed_versions(self, endpoint: str) -> set[str] | None:
        if not self.session.has(Role.SERVER):
            return None
        return _routed(self.session.server.endpoints(), endpoint)

    def _source(self, section: MonitoringSection) -> PredictionLogReader:
        if section.source == "batch":
            return BatchPredictionLog(batch_root(self.session))
        if not declares(self.session, ServerCapability.PREDICTION_LOG):
            raise StackError(
                f"the server adapter {self.session.resolved[Role.SERVER].adapter!r} cannot "
                "read its prediction log (the `prediction_log` capability), so there is "
                "nothing to monitor"
            )
        return cast(PredictionLogReader, self.session.server)  # the registry checked it

    def _recipe_of(self, model: str) -> Recipe | None:
        """The session's recipe, else the one that built the model's serving (else newest)
        version, its hooks registered: they hear of drift and may veto retraining."""
        if self.session.recipe is not None:
            return self.session.recipe
        serving = self.session.registry.find_by_state(model, LifecycleState.SERVING)
        versions = serving or self.session.registry.versions(model)[-1:]
        found = self.session.recipe_for(versions[0], required=False) if versions else None
        session_for(self.session, found)  # shares the hook bus: registers the recipe's hooks there
        return found


def _routed(endpoints: list[Endpoint], name: str) -> set[str] | None:
    """The versions that answer (or shadow) on the endpoint now; None when it is not up."""
    endpoint = next((e for e in endpoints if e.name == name), None)
    if endpoint is None:
        return None
    live = {ref for ref, weight in endpoint.split.weights.items() if weight > 0}
    return live | set(endpoint.split.shadows)


def _left_out(logged: list[LoggedRequest], kept: tuple[str, ...]) -> str:
    """Why a window may be empty although requests were answered: their traffic tags."""
    others: dict[str, int] = {}
    for request in logged:
        if request.role in ANSWERED and request.traffic not in kept:
            others[request.traffic] = others.get(request.traffic, 0) + 1
    return _left_out_counts(others, kept)


def _sampled_join(stats: JoinStats, labels: list[GroundTruth], answered: set[str]) -> JoinStats:
    """Label matches of a sampled window: a label naming a request id matched when the
    window answered that request (exact); one naming an entity as joined to the sample."""
    by_id = len(
        {label_key(g) for g in labels if g.request_id is not None and g.request_id in answered}
    )
    return JoinStats(labels=stats.labels, matched=by_id + stats.entity_matched)


def _left_out_counts(others: dict[str, int], kept: tuple[str, ...]) -> str:
    if not others:
        return ""
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(others.items()))
    return f" ({counts} left out: monitoring.include_traffic keeps {', '.join(kept)})"
