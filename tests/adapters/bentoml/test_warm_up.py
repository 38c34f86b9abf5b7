"""A version's first call costs more than the rest (weights read on first use, lazy imports,
a first connection to an LLM endpoint): it is paid while the version loads, never by a
request. A traced challenger too (an LLM app): warmed through its untraced predict, so the
warm-up leaves no trace the online evaluation would score."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from stack.contract.tracking import SERVED_VERSION
from stack_bentoml.isolation import load_isolated
from stack_bentoml.spec import Column, TraceSink, VersionSpec

FIRST_CALL_S = 4.0  # what the model spends on its first call
DEADLINE_S = 2.0  # the challenger deadline: the first call alone would miss it


class SlowFirstCall(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Loads its 'weights' on first use, as many LLM apps and embedders do."""

    def __init__(self) -> None:
        self.ready = False

    def load_context(self, context: Any) -> None:
        self.ready = False  # as loaded: whatever saving the model did, nothing is read yet

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> list[str]:
        if not self.ready:
            time.sleep(FIRST_CALL_S)
            self.ready = True
        calls = os.environ.get("WARM_UP_TEST_CALLS")
        if calls:  # each call's questions, one line each
            with open(calls, "a") as out:
                out.write(",".join(model_input["question"]) + "\n")
        return [f"answer to {q}" for q in model_input["question"]]


class Quick(SlowFirstCall):
    def load_context(self, context: Any) -> None:
        self.ready = True


def saved(
    model_dir: Path,
    ref: str,
    model: SlowFirstCall,
    *,
    example: bool,
    traces: TraceSink | None = None,
) -> VersionSpec:
    """`model` saved as a pyfunc taking a question, and its spec as the endpoint has it."""
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=model,
        input_example=pd.DataFrame({"question": ["How do I reset it?"]}) if example else None,
        pip_requirements=["pandas"],
    )
    return VersionSpec(
        ref=ref,
        model_tag=ref.replace("@", ":v"),
        model_dir=str(model_dir),
        flavor="pyfunc",
        inputs=(Column(name="question", type="string"),),
        traces=traces,
    )


def test_a_traced_challenger_answers_its_first_request_within_its_deadline(
    tmp_path: Path,
) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    traces = TraceSink(
        tracking_uri=tracking_uri,
        experiment="qa-serving",
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    spec = saved(tmp_path / "model", "qa@2", SlowFirstCall(), example=True, traces=traces)
    version = load_isolated(spec, tmp_path / "pids")
    try:
        answers = asyncio.run(version.answer([["Is it waterproof?"]], DEADLINE_S))
        assert answers == ["answer to Is it waterproof?"]
    finally:
        version.close(grace_s=0)
        assert version.process is not None
        version.process.join(30)  # its last traces are flushed as it exits
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("qa-serving")
    assert experiment is not None
    found = client.search_traces(locations=[experiment.experiment_id])
    # the request's trace alone: the warm-up was no request
    assert len(found) == 1, [t.data.spans[0].inputs for t in found]
    assert found[0].info.tags[SERVED_VERSION] == "qa@2"


@pytest.mark.parametrize("example", [True, False])
def test_a_version_is_called_once_on_its_example_as_it_loads(
    tmp_path: Path, example: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the worker too; without an example there is nothing to warm up with: the version
    loads all the same and its first request pays."""
    from stack_bentoml.runtime import load_version

    spec = saved(tmp_path / "model", "qa@1", Quick(), example=example)
    calls = tmp_path / "calls.txt"  # from here on: saving the model called it too
    monkeypatch.setenv("WARM_UP_TEST_CALLS", str(calls))
    version = load_version(spec)
    loaded = calls.read_text().splitlines() if calls.exists() else []
    assert loaded == (["How do I reset it?"] if example else [])
    assert version.predict([["Hi?"]]) == ["answer to Hi?"]
    assert calls.read_text().splitlines() == [*loaded, "Hi?"]
