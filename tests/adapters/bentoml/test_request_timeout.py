"""The endpoint's request timeout (stack_bentoml/timeouts.py): BentoML's answer to a request
past `traffic.timeout`, with no timer kept alive per answered request.

BentoML's own middleware kept every request's timer (and its future and context) for the whole
timeout: a worker under load held hundreds of thousands, and the collector's passes over them
stalled every request in flight for 100-460 ms, longer the longer the worker ran."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from stack_bentoml.timeouts import RequestTimeout, install


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/predict", "headers": []}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _live_timers(loop: asyncio.AbstractEventLoop) -> int:
    return sum(1 for handle in loop._scheduled if not handle.cancelled())  # type: ignore[attr-defined]


def test_answered_requests_leave_no_timer_behind() -> None:
    async def run() -> tuple[int, list[int]]:
        middleware = RequestTimeout(_answer, timeout=60)
        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await asyncio.gather(*(middleware(_scope(), _receive, send) for _ in range(500)))
        return _live_timers(asyncio.get_running_loop()), statuses

    live, statuses = asyncio.run(run())
    assert statuses == [200] * 500
    assert live == 0


def test_a_request_past_the_timeout_is_cancelled_and_answered_504() -> None:
    async def run() -> tuple[list[dict[str, Any]], bool, int]:
        stopped = asyncio.Event()

        async def stall(scope: Any, receive: Any, send: Any) -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                stopped.set()
                raise

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asyncio.wait_for(RequestTimeout(stall, timeout=0.05)(_scope(), _receive, send), 5)
        await asyncio.sleep(0)
        return sent, stopped.is_set(), _live_timers(asyncio.get_running_loop())

    sent, stopped, live = asyncio.run(run())
    assert sent[0]["status"] == 504
    assert json.loads(sent[1]["body"]) == {
        "error": "Not able to process the request in 0.05 seconds"
    }
    assert stopped  # the app's work stops with its request
    assert live == 0


def test_an_app_failing_before_its_answer_fails_at_once_not_after_the_timeout() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("model exploded")

    async def run() -> None:
        async def send(message: dict[str, Any]) -> None:
            pass

        # within 5 s, not the timeout's 60 (the server's error middleware answers it)
        await asyncio.wait_for(RequestTimeout(broken, timeout=60)(_scope(), _receive, send), 5)

    with pytest.raises(RuntimeError, match="model exploded"):
        asyncio.run(run())


def test_bentoml_builds_ours_in_place_of_its_own() -> None:
    from bentoml._internal.server.base_app import BaseAppFactory

    class Factory(BaseAppFactory):
        name = "probe"

    install()
    built = [m.cls for m in Factory(timeout=60).middlewares]
    assert RequestTimeout in built
