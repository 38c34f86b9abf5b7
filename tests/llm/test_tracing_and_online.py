"""A traced LLM app (retrieval, generation, chain spans with the prompt version on the trace),
its traces read back, scored online and the scores written onto them as feedback; a mean
below its floor is a breach, audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow

from stack.contract.tracking import TraceRecord
from stack.llm.online import evaluate_traces, tracer
from stack.llm.scorers import ContextOverlap, Example
from stack.session import StackSession

DOCS = {
    "d1": "Paris is the capital of France.",
    "d2": "Berlin is the capital of Germany.",
}


def answer(session: StackSession, question: str, grounded: bool) -> str:
    """A tiny RAG app: retrieve by word overlap, then 'generate' (scripted: the model is not
    what is tested here, the tracing is)."""
    spans = tracer(session, "qa-app")
    with spans.span(
        "qa",
        kind="CHAIN",
        inputs={"question": question},
        tags={"mlstack.prompt_version": "qa-system@2"},
    ) as chain:
        with spans.span("retrieve", kind="RETRIEVER", inputs={"query": question}) as retrieval:
            words = set(question.lower().split())
            best = max(DOCS, key=lambda d: len(words & set(DOCS[d].lower().split())))
            retrieval.set_outputs([{"id": best, "text": DOCS[best]}])
        with spans.span("generate", kind="LLM", inputs={"context": DOCS[best]}) as generation:
            text = DOCS[best] if grounded else "I believe it is Lyon, famous for food."
            generation.set_attribute("tokens.prompt", 42)
            generation.set_attribute("tokens.completion", len(text.split()))
            generation.set_outputs(text)
        chain.set_outputs({"answer": text, "context": DOCS[best]})
    return text


def to_example(trace: TraceRecord) -> Example:
    outputs = trace.outputs if isinstance(trace.outputs, dict) else {}
    return Example(
        question=str(trace.inputs.get("question", "")),
        answer=str(outputs.get("answer", "")),
        context=(str(outputs.get("context", "")),),
    )


def test_traces_are_scored_online_and_a_low_mean_breaches(workdir: Path) -> None:
    (workdir / "stack.yaml").write_text(
        "name: llm\nhome: .mlstack\ntracker: {adapter: mlflow}\n"
        "spine: {url: 'sqlite:///.mlstack/spine.db'}\n"
    )
    with StackSession.open(workdir / "stack.yaml", base_dir=workdir) as session:
        for i in range(4):
            answer(session, "What is the capital of France?", grounded=i < 2)
        traces = tracer(session, "qa-app").traces()
        assert len(traces) == 4
        assert {s.name for s in traces[0].spans} == {"qa", "retrieve", "generate"}
        assert traces[0].tags["mlstack.prompt_version"] == "qa-system@2"

        result = evaluate_traces(
            session,
            experiment="qa-app",
            scorers=[ContextOverlap()],
            to_example=to_example,
            sample=10,
            min_scores={"context_overlap": 0.8},
            seed=1,
        )
        assert result.traces == 4
        assert 0.4 < result.scores["context_overlap"] < 0.8  # half grounded, half not
        assert result.breaches == [
            f"context_overlap {result.scores['context_overlap']:.3f} below 0.8"
        ]
        # a later check reads the scores back: each trace is scored (and annotated) once
        again = evaluate_traces(
            session,
            experiment="qa-app",
            scorers=[ContextOverlap()],
            to_example=to_example,
            sample=10,
            seed=2,
        )
        assert again.scores == result.scores
        assert all(
            t.scores.keys() == {"context_overlap"} for t in tracer(session, "qa-app").traces()
        )

    # the scores are on the traces, as feedback MLflow shows beside them
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / '.mlstack' / 'mlflow.db'}")
    trace = client.get_trace(traces[0].trace_id)
    names = [a.name for a in trace.info.assessments]
    assert names == ["context_overlap"]  # not written again by the second check
    generate = next(s for s in trace.data.spans if s.name == "generate")
    assert generate.attributes["tokens.prompt"] == 42


def test_monitor_run_evaluates_an_apps_traces(workdir: Path, cli: Any) -> None:
    """`mlstack monitor run` with `source: traces`: the recipe's scorers on the window's
    traces, the check stored like any other, exit 3 on a breach."""
    (workdir / "stack.yaml").write_text(
        "name: llm\nhome: .mlstack\ntracker: {adapter: mlflow}\n"
        "spine: {url: 'sqlite:///.mlstack/spine.db'}\n"
    )
    recipe = workdir / "qa"
    recipe.mkdir()
    (recipe / "steps.py").write_text("def noop():\n    return None\n")
    (recipe / "recipe.yaml").write_text(
        "name: qa\nmonitoring:\n  source: traces\n  window: 1h\n"
        "  traces: {experiment: qa-app, scorers: [context_overlap],\n"
        "           min_scores: {context_overlap: 0.9}}\n"
        "steps:\n  - {name: noop, run: 'steps:noop'}\n"
    )
    with StackSession.open(workdir / "stack.yaml", base_dir=workdir) as session:
        for i in range(3):
            answer(session, "What is the capital of France?", grounded=i == 0)
        tracer(session, "qa-app").flush()  # the app's exporter runs in the background
    result = cli("monitor", "run", "qa-system", "--recipe", "qa", "--json")
    assert result.returncode == 3, result.stdout + result.stderr
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["status"] == "breach" and record["rows"] == 3
    assert record["breaches"][0].startswith("context_overlap")
    assert 0.2 < record["performance"]["metrics"]["context_overlap"] < 0.6
    history = cli("monitor", "history", "qa-system")
    assert "breach" in history.stdout
    with StackSession.open(workdir / "stack.yaml", base_dir=workdir) as session:
        audited = session.spine.audit_entries(subject="qa-system")
        assert [e.action for e in audited] == ["monitoring.breached"]  # once, by the loop
