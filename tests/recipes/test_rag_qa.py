"""The RAG recipe end to end with its generator on 127.0.0.1: the local OpenAI-compatible
server (stack_llm_local.server) the test starts over a scripted model (the model behind the
endpoint is outside mlstack, the plumbing is not). Prompt versions evaluated and registered
in MLflow's prompt registry, one app per prompt version, and a canary from the first app to
the second on a real BentoML endpoint."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest

from stack.contract.states import LifecycleState
from stack.session import StackSession
from stack.spine import NodeKind, NodeRef
from stack_llm_local.server import ChatRequest, completion, handler_for
from tests.recipes.conftest import copy_recipe, endpoints_stopped, run_recipe

QUESTIONS = Path(__file__).parents[2] / "recipes" / "rag-qa" / "questions.jsonl"


def copy_with_short_bakes(folder: Path) -> None:
    """The recipe as shipped bakes 15 s per step for the local model's pace; the scripted
    generator answers at once, so a few seconds give every check plenty of requests."""
    short = {"bake_seconds: 15": "bake_seconds: 5", "watch_seconds: 4": "watch_seconds: 2"}
    copy_recipe("rag-qa", folder, **short)


def scripted_generator(*, unseen_questions_answered_badly: bool) -> ThreadingHTTPServer:
    """Answers with the context's first sentence when the prompt gives one, else guesses; with
    `unseen_questions_answered_badly`, it also guesses for any question the evaluation set
    does not hold (a model that passed its evaluation and fails on production questions)."""
    known = {
        json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()
    }

    class Scripted:
        name = "scripted"

        def chat(self, request: ChatRequest) -> dict[str, Any]:
            prompt = request.messages[-1].content
            found = re.search(r"Context: #[^\n]*?\n?(.*?\.)", prompt, re.S)
            asked = re.search(r"Question: (.*)$", prompt.strip())
            unseen = asked is not None and asked.group(1).strip() not in known
            if found and not (unseen and unseen_questions_answered_badly):
                answer = found.group(1).strip()
            else:
                answer = "Probably, check the website."
            return completion(request, answer, completion_tokens=len(answer.split()))

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(Scripted()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def generator() -> Iterator[str]:
    server = scripted_generator(unseen_questions_answered_badly=False)
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture
def failing_in_production() -> Iterator[str]:
    server = scripted_generator(unseen_questions_answered_badly=True)
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_prompts_are_gated_and_the_new_app_rolls_out_as_a_canary(
    tmp_path: Path, generator: str
) -> None:
    copy_with_short_bakes(tmp_path)
    env = {"MLSTACK_LLM_BASE_URL": generator}
    with endpoints_stopped(tmp_path):
        code, output = run_recipe(tmp_path, "rag-qa", env)
        assert code == 0, output
        assert "6 documents embedded (384 dimensions)" in output
        assert "promoted: rag-qa@2" in output, output
        assert "prompt rag-qa-prompt@2 is now serving" in output, output
        with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
            serving = session.registry.find_by_state("rag-qa", LifecycleState.SERVING)
            assert [v.ref for v in serving] == ["rag-qa@2"]
            assert serving[0].tags["mlstack.prompt_version"] == "rag-qa-prompt@2"
            [endpoint] = session.server.endpoints()
            answer = httpx.post(
                f"{endpoint.url}/predict",
                json={"question": "How long is the warranty?"},
                timeout=30,
            )
            assert answer.status_code == 200
            assert "two-year warranty" in answer.json()["predictions"][0]
            client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{session.home / 'mlflow.db'}")
            versions = client.search_prompt_versions("rag-qa-prompt")
            assert sorted(int(v.version) for v in versions) == [1, 2]
            # the grounded prompt scored higher on the evaluation the gate reads
            runs = {
                v.version: v.run_id
                for v in (
                    session.registry.prompts().versions("rag-qa-prompt")  # type: ignore[attr-defined]
                )
            }
            overlap = {
                n: session.tracker.get_run(r).metrics["context_overlap"] for n, r in runs.items()
            }
            assert overlap[2] > overlap[1]
            # lineage: evaluation run -> prompt version -> app version -> endpoint revision
            lineage = session.spine.downstream(NodeRef(NodeKind.PROMPT_VERSION, "rag-qa-prompt@2"))
            relations = {(e.relation, str(e.target).split(":")[0]) for e in lineage}
            assert ("pinned_by", "model_version") in relations
            assert ("served_by", "endpoint_revision") in relations
            traces = client.search_traces(
                experiment_ids=[client.get_experiment_by_name("rag-qa-app").experiment_id]
            )
            assert len(traces) == 12  # six questions, two prompt versions
            # served: each request a trace tagged with the version that answered it, the
            # app's own spans under it; online evaluation scored them per version while the
            # canary baked, and wrote the scores onto them
            served = [
                t
                for t in client.search_traces(
                    locations=[client.get_experiment_by_name("rag-qa-serving").experiment_id],
                    max_results=1000,
                )
                if "IN_PROGRESS" not in str(t.info.state)  # exported a moment later
            ]
            roots = [next(s for s in t.data.spans if s.parent_id is None) for t in served]
            answered = {root.attributes.get("mlstack.version") for root in roots}
            assert answered == {"rag-qa@1", "rag-qa@2"}, answered
            names = {s.name for s in served[0].data.spans}
            assert {"rag-qa", "qa", "retrieve", "generate"} <= names
            scored = [t for t in served if t.info.assessments]
            assert scored and {a.name for a in scored[0].info.assessments} >= {"context_overlap"}
            assert re.search(
                r"online evaluation: rag-qa@2: ok, \d+ traces, context_overlap", output
            )
            checks = session.spine.checks("rag-qa", limit=50)
            assert {c.version for c in checks} >= {"rag-qa@1", "rag-qa@2"}
        # a second run gates the new versions against the serving ones on the same questions
        code, again = run_recipe(tmp_path, "rag-qa", env)
        assert code == 0, again
        assert "rag-qa-prompt@4" in again
        # the first template again: worse than the serving prompt on the same questions
        assert "gate to approved for rag-qa-prompt@3: FAILED" in again, again


def test_a_canary_that_fails_online_evaluation_is_rolled_back(
    tmp_path: Path, failing_in_production: str
) -> None:
    """The new app passes its offline evaluation, then answers production questions badly:
    the online evaluation of its served traces, run while it bakes, breaches the recipe's
    floor, and the `rollback` policy sends the traffic back to the serving app."""
    copy_with_short_bakes(tmp_path)
    env = {"MLSTACK_LLM_BASE_URL": failing_in_production}
    with endpoints_stopped(tmp_path):
        code, output = run_recipe(tmp_path, "rag-qa", env)
        assert code == 0, output
        assert "rolled_back: rag-qa@2" in output, output
        assert "prompt rag-qa-prompt@2 is now rejected" in output, output
        assert "rag-qa@2 rolled back on rag-qa; rag-qa@1 serves (monitoring: context_overlap" in (
            output
        ), output
        with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
            assert session.registry.get_version("rag-qa", 2).state is LifecycleState.REJECTED
            serving = session.registry.find_by_state("rag-qa", LifecycleState.SERVING)
            assert [v.ref for v in serving] == ["rag-qa@1"]
            [endpoint] = session.server.endpoints()
            assert {r for r, w in endpoint.split.weights.items() if w > 0} == {"rag-qa@1"}
            rolled = [
                e
                for e in session.spine.audit_entries(action="rollout.rolled_back")
                if e.subject == "endpoint:rag-qa"
            ]
            assert len(rolled) == 1, rolled  # by the monitor; the bake saw it and stopped
            assert rolled[0].reason.startswith("monitoring: context_overlap")
            assert rolled[0].payload["from"] == "rag-qa@2"
