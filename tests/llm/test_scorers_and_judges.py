"""Code scorers, and an LLM judge wired to an OpenAI-compatible server on 127.0.0.1 (scripted:
the model behind the endpoint is outside mlstack; its wiring is not). A judge that is down or
answers garbage fails the evaluation, and the run says failed: it never passes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stack.llm.scorers import (
    ContextOverlap,
    ExactMatch,
    Example,
    JsonValid,
    Judge,
    JudgeError,
    Length,
    RegexMatch,
    RetrievalHitRate,
)

EXAMPLE = Example(
    question="What is the capital of France?",
    answer="Paris is the capital of France.",
    expected="Paris is the capital of France.",
    context=("Paris is the capital and largest city of France.",),
    retrieved=("doc-1", "doc-7"),
    relevant=("doc-1", "doc-2"),
)


def test_code_scorers() -> None:
    assert ExactMatch().score(EXAMPLE) == 1.0
    assert ExactMatch().score(Example("q", "Lyon", expected="Paris")) == 0.0
    assert RegexMatch(r"\bParis\b").score(EXAMPLE) == 1.0
    assert Length(max_chars=10).score(EXAMPLE) == 0.0
    assert JsonValid().score(Example("q", '{"a": 1}')) == 1.0
    assert JsonValid().score(Example("q", "{a: 1}")) == 0.0
    assert RetrievalHitRate().score(EXAMPLE) == 0.5
    assert ContextOverlap().score(EXAMPLE) == 1.0
    assert (
        ContextOverlap().score(Example("q", "Lyon has good food", context=EXAMPLE.context)) == 0.0
    )


class Scripted:
    """What the scripted endpoint answers next, and what it was asked."""

    def __init__(self) -> None:
        self.reply: Any = {"score": 0.8, "rationale": "grounded"}
        self.status = 200
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Scripted]]:
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            script.requests.append(
                {"path": self.path, "auth": self.headers.get("authorization"), **body}
            )
            content = script.reply if isinstance(script.reply, str) else json.dumps(script.reply)
            payload = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": content}}]}
            )
            self.send_response(script.status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script
    server.shutdown()


def judge(url: str) -> Judge:
    return Judge(
        "groundedness", "Is every claim supported by the context?", url, "judge-model", api_key="k"
    )


def test_the_judge_asks_the_endpoint_and_reads_its_score(endpoint: tuple[str, Scripted]) -> None:
    url, script = endpoint
    assert judge(url).score(EXAMPLE) == 0.8
    [asked] = script.requests
    assert asked["path"] == "/v1/chat/completions" and asked["model"] == "judge-model"
    assert asked["auth"] == "Bearer k"
    assert "Paris is the capital and largest city of France." in asked["messages"][1]["content"]
    script.reply = '```json\n{"score": 1, "rationale": "fenced"}\n```'
    assert judge(url).score(EXAMPLE) == 1.0


@pytest.mark.parametrize(
    ("reply", "status", "message"),
    [
        ("I think it is fine", 200, "not a score"),
        ({"score": 7}, 200, r"outside \[0, 1\]"),
        ({"rationale": "no score"}, 200, "not a score"),
        ({"score": 0.9}, 500, "answered 500"),
    ],
)
def test_a_judge_answering_garbage_fails(
    endpoint: tuple[str, Scripted], reply: Any, status: int, message: str
) -> None:
    url, script = endpoint
    script.reply, script.status = reply, status
    with pytest.raises(JudgeError, match=message):
        judge(url).score(EXAMPLE)


def test_a_judge_that_is_down_fails_the_evaluation_and_the_run(workdir: Path) -> None:
    from stack.llm.evaluation import evaluate
    from stack.session import StackSession

    (workdir / "stack.yaml").write_text(
        "name: e\nhome: .mlstack\ntracker: {adapter: mlflow}\nspine: {url: 'sqlite:///.mlstack/spine.db'}\n"
    )
    with StackSession.open(workdir / "stack.yaml", base_dir=workdir) as session:
        with pytest.raises(JudgeError, match="unreachable"):
            evaluate(
                session,
                [EXAMPLE],
                [ContextOverlap(), judge("http://127.0.0.1:9")],
                experiment="qa-evaluations",
                name="down",
            )
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / '.mlstack' / 'mlflow.db'}")
        [run] = client.search_runs([client.get_experiment_by_name("qa-evaluations").experiment_id])
        assert run.info.status == "FAILED"
        assert "groundedness" not in run.data.metrics  # nothing that looks like a pass


def test_an_evaluation_logs_each_scorers_mean(
    workdir: Path, endpoint: tuple[str, Scripted]
) -> None:
    from stack.llm.evaluation import evaluate
    from stack.session import StackSession

    url, _ = endpoint
    (workdir / "stack.yaml").write_text(
        "name: e\nhome: .mlstack\ntracker: {adapter: mlflow}\nspine: {url: 'sqlite:///.mlstack/spine.db'}\n"
    )
    with StackSession.open(workdir / "stack.yaml", base_dir=workdir) as session:
        result = evaluate(
            session,
            [EXAMPLE, Example("q", "Lyon", expected="Paris", context=("Paris",))],
            [ExactMatch(), judge(url)],
            experiment="qa-evaluations",
            name="ok",
        )
        assert result.scores == {"exact_match": 0.5, "groundedness": 0.8}
        record = session.tracker.get_run(result.run.run_id)
        assert record.metrics["groundedness"] == 0.8 and record.metrics["examples"] == 2.0


def test_the_judge_endpoint_comes_from_the_stack_file(
    workdir: Path, endpoint: tuple[str, Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stack.config.stack_file import read_stack_file
    from stack.errors import StackError
    from stack.llm.scorers import stack_judge

    url, script = endpoint
    monkeypatch.setenv("JUDGE_API_KEY", "from-env")
    (workdir / "stack.yaml").write_text(
        f"name: j\njudge: {{base_url: '{url}/v1', model: small, api_key: '${{JUDGE_API_KEY}}'}}\n"
    )
    stack, _ = read_stack_file(workdir / "stack.yaml")
    assert "from-env" not in repr(stack)  # a secret, never printed
    assert stack_judge(stack.judge, "groundedness", "supported?").score(EXAMPLE) == 0.8
    assert script.requests[-1]["auth"] == "Bearer from-env"
    with pytest.raises(StackError, match="names no `judge:` endpoint"):
        stack_judge(None, "groundedness", "supported?")
