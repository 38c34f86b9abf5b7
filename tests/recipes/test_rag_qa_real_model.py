"""The RAG recipe on the real packaged models (`make test-llm`; not in `make test`): the
SmolLM2 GGUF through the local llama.cpp generator, the MiniLM embeddings. Asserts plumbing
and latency, never the small model's judgement: whichever way its canary goes (promoted, or
rolled back by online evaluation, as this model's loose answers usually cause), the
registry, the endpoint and the audit log must agree with what the run said."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import mlflow
import pytest

from stack.contract.states import LifecycleState
from stack.session import StackSession
from stack_llm_local.generator import stop_local_generator
from tests.recipes.conftest import copy_recipe, endpoints_stopped, run_recipe

pytestmark = pytest.mark.real_llm


def test_the_recipe_runs_on_the_packaged_models(tmp_path: Path) -> None:
    copy_recipe("rag-qa", tmp_path)
    started = time.monotonic()
    try:
        with endpoints_stopped(tmp_path):
            # an empty MLSTACK_LLM_BASE_URL: the recipe starts the packaged model
            code, output = run_recipe(tmp_path, "rag-qa", {"MLSTACK_LLM_BASE_URL": ""}, timeout=900)
            took = time.monotonic() - started
            print(output)
            assert code == 0, output
            assert "generator: smollm2 (packaged, llama.cpp)" in output
            assert "6 documents embedded (384 dimensions)" in output
            outcome = re.search(r"(promoted|rolled_back): (rag-qa@\d+)", output)
            assert outcome is not None, output
            with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
                canary = session.registry.get_version("rag-qa", int(outcome.group(2).split("@")[1]))
                expected = {
                    "promoted": LifecycleState.SERVING,
                    "rolled_back": LifecycleState.REJECTED,
                }
                assert canary.state is expected[outcome.group(1)]
                client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{session.home / 'mlflow.db'}")
                experiment = client.get_experiment_by_name("rag-qa-serving")
                served = client.search_traces(locations=[experiment.experiment_id], max_results=500)
                assert served
                generations = [s for t in served for s in t.data.spans if s.name == "generate"]
                tokens = [s.attributes["tokens.completion"] for s in generations]
                assert all(0 < n <= 96 for n in tokens), tokens
                seconds = [(s.end_time_ns - s.start_time_ns) / 1e9 for s in generations]
                # latency on 2 CPU cores: a generous bound, reported with the numbers
                print(
                    f"served generations: {len(seconds)}, "
                    f"median {statistics.median(seconds):.2f} s, "
                    f"max {max(seconds):.2f} s; the whole run {took:.0f} s"
                )
                assert statistics.median(seconds) < 15, seconds
    finally:
        stop_local_generator(tmp_path / ".mlstack")
