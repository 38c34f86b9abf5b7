"""Online evaluation of an LLM app: its traces in the window, scored and held to the
recipe's floors, one check per version that answered."""

from __future__ import annotations

from datetime import datetime

from stack.config.monitoring import MonitoringSection
from stack.config.recipe_file import Recipe
from stack.contract.monitoring import PerformanceReport
from stack.errors import StackError
from stack.monitoring.recording import CheckRecorder
from stack.monitoring.results import CheckResult, MonitoringOutcome
from stack.session import StackSession


def assess_traces(
    session: StackSession,
    recorder: CheckRecorder,
    model: str,
    recipe: Recipe | None,
    section: MonitoringSection,
    span: tuple[datetime, datetime],
    routed: set[str] | None,
) -> MonitoringOutcome:
    """Online evaluation of an LLM app: its traces in the window, by the version that
    answered them (a canary's apart from the serving one's), each sample scored and held
    to the floors; each check recorded like any other (its scores as the performance)."""
    from stack.llm.online import by_version, example_reader, score_traces, scorers_for, tracer

    check = section.traces
    if check is None:
        raise StackError("monitoring `source: traces` needs a `traces:` section")
    source = tracer(session, check.experiment)
    found = source.traces(since=span[0], limit=check.sample * 20)
    groups = by_version([t for t in found if t.started_at <= span[1]], default=model)
    if routed is not None:  # versions taken off the endpoint are history, not alerts
        groups = {ref: g for ref, g in groups.items() if ref == model or ref in routed}
    scorers = scorers_for(session, check.scorers)
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
        recorder.record(result, section)
    return MonitoringOutcome(checks, model=model, recipe=recipe, section=section, until=span[1])
