"""An evaluation: scorers over a dataset's examples, the means logged as metrics of a tracker
run (which is what promotion gates read), and a failure — a judge down or answering garbage —
raised, never recorded as a pass."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from stack.contract.tracking import DatasetFingerprint, RunRef, RunStatus
from stack.llm.scorers import Example, Scorer, mean_scores
from stack.session import StackSession


def fingerprint(name: str, examples: Sequence[Example]) -> DatasetFingerprint:
    """The examples' identity: what was asked, of what, expecting what (not the answers)."""
    rows = [[e.question, e.expected, list(e.context), list(e.relevant)] for e in examples]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return DatasetFingerprint(
        name=name,
        digest=f"sha256:{digest}",
        rows=len(examples),
        columns=("question", "expected", "context", "relevant"),
        source="evaluation examples",
    )


@dataclass(frozen=True)
class Evaluation:
    run: RunRef
    scores: dict[str, float]
    examples: int


def evaluate(
    session: StackSession,
    examples: Sequence[Example],
    scorers: Sequence[Scorer],
    *,
    experiment: str,
    name: str,
    params: dict[str, object] | None = None,
    dataset: str | None = None,
) -> Evaluation:
    """Score every example; log the means to a new run in `experiment` (failed if a scorer
    fails, and the error raised). With `dataset`, the examples' fingerprint is logged under
    that name, so a gate's champion rule (`same_dataset`) compares like with like."""
    tracker = session.tracker
    run = tracker.start_run(experiment, name=name, tags={"mlstack.kind": "evaluation"})
    if params:
        tracker.log_params(run, params)
    if dataset:
        tracker.log_dataset(run, fingerprint(dataset, examples), context="evaluation")
    try:
        scores = mean_scores(scorers, examples)
    except BaseException:
        tracker.finish_run(run, RunStatus.FAILED)
        raise
    tracker.log_metrics(run, {**scores, "examples": float(len(examples))})
    tracker.finish_run(run)
    return Evaluation(run, scores, len(examples))
