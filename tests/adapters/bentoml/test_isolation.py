"""A challenger in a process of its own, called from the event loop and from threads (the
shadow writer): every answer reaches the request that asked, whatever the size or the number
in flight, on asyncio's loop and uvloop's, and a process that dies fails what waits on it at
once."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from stack_bentoml.isolation import ChallengerDied, IsolatedVersion, load_isolated
from stack_bentoml.spec import Column, VersionSpec


class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Answers each question with itself; a question starting `sleep ` waits that long."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> list[str]:
        for question in model_input["question"]:
            if question.startswith("sleep "):
                time.sleep(float(question.split()[1]))
        return [f"re: {q}" for q in model_input["question"]]


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> VersionSpec:
    model_dir = tmp_path_factory.mktemp("echo") / "model"
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=Echo(),
        input_example=pd.DataFrame({"question": ["hi"]}),
        pip_requirements=["pandas"],
    )
    return VersionSpec(
        ref="echo@2",
        model_tag="echo:v2",
        model_dir=str(model_dir),
        flavor="pyfunc",
        inputs=(Column(name="question", type="string"),),
    )


Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """A coroutine run to its end on a new event loop: asyncio's, or uvloop's (the one
    BentoML's workers run, whose transports behave otherwise in places)."""
    if request.param == "asyncio":
        return asyncio.run
    import uvloop

    def on_uvloop(coroutine: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)

    return on_uvloop


@pytest.fixture
def version(spec: VersionSpec, tmp_path: Path) -> Iterator[IsolatedVersion]:
    loaded = load_isolated(spec, tmp_path / "pids")
    yield loaded
    loaded.close(grace_s=0)
    assert loaded.process is not None
    loaded.process.join(20)


def test_many_calls_in_flight_each_get_their_own_answer(version: IsolatedVersion, run: Run) -> None:
    """From the loop, 60 at once (some 200 KB, more than a socket buffer holds), and from
    threads meanwhile: answers matched by number, never crossed."""
    big = "x" * 200_000

    async def calls() -> list[Any]:
        asked = [[[f"q{i}" + (big if i % 10 == 0 else "")]] for i in range(60)]
        answers = await asyncio.gather(*(version.answer(rows, 20) for rows in asked))
        return [(rows[0][0], answer) for rows, answer in zip(asked, answers, strict=True)]

    from_threads: list[tuple[str, Any]] = []

    def thread(n: int) -> None:
        for i in range(5):
            question = f"thread {n} call {i}"
            from_threads.append((question, version.predict([[question]])))

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    answered = run(calls())
    for t in threads:
        t.join(60)
    assert [answer for _, answer in answered] == [[f"re: {q}"] for q, _ in answered]
    assert len(from_threads) == 15
    assert all(answer == [f"re: {q}"] for q, answer in from_threads)


def test_a_later_event_loop_calls_it_too(version: IsolatedVersion, run: Run) -> None:
    """The loop that first called it has closed: the next loop adopts the socket afresh."""
    assert run(version.answer([["one"]], 20)) == ["re: one"]
    assert run(version.answer([["two"]], 20)) == ["re: two"]
    assert version.predict([["three"]]) == ["re: three"]


def test_a_killed_process_fails_what_waits_on_it_at_once(
    version: IsolatedVersion, run: Run
) -> None:
    assert version.process is not None and version.process.pid is not None
    pid = version.process.pid

    async def waiting_then_killed() -> tuple[BaseException | Any, BaseException | Any]:
        # its deadline (60 s) is past the model's call (30 s): only the socket's end can
        # fail it, and not as a missed deadline
        pending = asyncio.ensure_future(version.answer([["sleep 30"]], 60))
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        first = await asyncio.gather(pending, return_exceptions=True)
        later = await asyncio.gather(version.answer([["again"]], 60), return_exceptions=True)
        return first[0], later[0]

    first, later = run(waiting_then_killed())
    assert isinstance(first, ChallengerDied), first
    assert isinstance(later, ChallengerDied), later
    with pytest.raises(ChallengerDied):
        version.predict([["from a thread"]])
