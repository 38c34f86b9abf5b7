"""Online evaluation: production traces sampled, scored with the recipe's scorers, the scores
written onto the traces as feedback (visible beside them in MLflow), and the same kind of
policy as for drift: a mean below its floor is a breach (the monitoring loop records and
alerts it like any other)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from stack.config.monitoring import TraceJudge, TracesCheck
from stack.contract.capabilities import TrackerCapability
from stack.contract.tracking import SERVED_VERSION, Tracer, TraceRecord, TracingTracker
from stack.errors import StackError
from stack.llm.scorers import CODE_SCORERS, Example, JudgeError, Scorer, stack_judge
from stack.plugins.capabilities import declares
from stack.session import StackSession

ToExample = Callable[[TraceRecord], Example]


@dataclass
class OnlineResult:
    traces: int
    scores: dict[str, float]
    breaches: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def scorers_for(session: StackSession, names: Sequence[str | TraceJudge]) -> list[Scorer]:
    """The recipe's scorers: code scorers by name, judges on the stack's `judge:` endpoint."""
    found: list[Scorer] = []
    for entry in names:
        if isinstance(entry, str):
            if entry not in CODE_SCORERS:
                known = ", ".join(sorted(CODE_SCORERS))
                raise StackError(f"no scorer {entry!r}; code scorers are {known}")
            found.append(CODE_SCORERS[entry]())
        else:
            found.append(stack_judge(session.stack.judge, entry.judge, entry.criteria))
    return found


def example_reader(check: TracesCheck) -> ToExample:
    """How a trace becomes an example: the question from the inputs, the answer and context
    from the outputs (a mapping) of the span the recipe names (`span`, default the root),
    by the field names the recipe gives."""

    def read(trace: TraceRecord) -> Example:
        span = trace.span(check.span) or trace.span()
        inputs = span.inputs if span is not None else {}
        produced = span.outputs if span is not None else None
        outputs = produced if isinstance(produced, Mapping) else {}
        answer = outputs.get(check.answer_field, produced if not outputs else "")
        context = outputs.get(check.context_field, ())
        return Example(
            question=str(inputs.get(check.question_field, "")),
            answer=str(answer),
            context=tuple(context) if isinstance(context, list | tuple) else (str(context),),
        )

    return read


def by_version(traces: Sequence[TraceRecord], default: str) -> dict[str, list[TraceRecord]]:
    """Traces by the version that answered them (the serving adapter sets `mlstack.version`
    on the root span, stored with the spans, and as a trace tag, which the store may write a
    moment later); `default` for traces made elsewhere, such as an offline evaluation."""
    groups: dict[str, list[TraceRecord]] = {}
    for trace in traces:
        root = trace.span()
        version = root.attributes.get(SERVED_VERSION) if root is not None else None
        key = str(version or trace.tags.get(SERVED_VERSION) or default)
        groups.setdefault(key, []).append(trace)
    return groups


def tracer(session: StackSession, experiment: str) -> Tracer:
    if not declares(session, TrackerCapability.TRACING):
        raise StackError("this stack's tracker keeps no traces (the `tracing` capability)")
    return cast(TracingTracker, session.tracker).tracer(experiment)  # the registry checked it


def evaluate_traces(
    session: StackSession,
    *,
    experiment: str,
    scorers: Sequence[Scorer],
    to_example: ToExample,
    since: datetime | None = None,
    sample: int = 50,
    min_scores: Mapping[str, float] | None = None,
    seed: int | None = None,
) -> OnlineResult:
    """Score up to `sample` traces since `since` (see `score_traces`)."""
    source = tracer(session, experiment)
    found = source.traces(since=since, limit=max(sample * 4, sample))
    return score_traces(
        source, found, scorers, to_example, sample=sample, min_scores=min_scores, seed=seed
    )


def score_traces(
    source: Tracer,
    traces: Sequence[TraceRecord],
    scorers: Sequence[Scorer],
    to_example: ToExample,
    *,
    sample: int = 50,
    min_scores: Mapping[str, float] | None = None,
    seed: int | None = None,
) -> OnlineResult:
    """Score a sample of `traces`; write each score as feedback (a trace an earlier check
    scored keeps its score, not written again); a judge that fails on a
    trace is reported (and that trace left unscored), never counted as a pass. Breaches are
    returned, not acted on: `mlstack monitor run` (`source: traces`) records, audits, alerts
    and rolls back as it does for every check."""
    chosen = random.Random(seed).sample(list(traces), min(sample, len(traces)))
    totals: dict[str, list[float]] = {s.name: [] for s in scorers}
    result = OnlineResult(traces=len(chosen), scores={})
    for trace in chosen:
        example = to_example(trace)
        for scorer in scorers:
            if scorer.name in trace.scores:  # scored by an earlier check: once is enough
                totals[scorer.name].append(trace.scores[scorer.name])
                continue
            try:
                value = scorer.score(example)
            except JudgeError as exc:
                result.failures.append(f"{trace.trace_id}: {exc}")
                continue
            source.log_feedback(trace.trace_id, scorer.name, value)
            totals[scorer.name].append(value)
    result.scores = {name: sum(v) / len(v) for name, v in totals.items() if v}
    for name, floor in (min_scores or {}).items():
        if name not in result.scores:
            result.breaches.append(f"{name}: no trace could be scored")
        elif result.scores[name] < floor:
            result.breaches.append(f"{name} {result.scores[name]:.3f} below {floor:g}")
    return result
