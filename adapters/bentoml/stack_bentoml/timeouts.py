"""BentoML's request timeout (`traffic.timeout`), without a timer left behind per request.

BentoML 1.4's `TimeoutMiddleware` (bentoml/_internal/server/http/traffic.py) arms
`loop.call_later(timeout, ...)` for every request and never cancels it: each answered request
leaves a timer, a future and a context alive for the whole timeout (60 s here). A worker
answering 6,000 requests/s holds ~360,000 of them, and the collector's full passes over that
heap stall the worker's event loop for every request in flight — measured 100-460 ms per pass,
growing with uptime until the first timers fire (bench/serving_faults.py's tail latency).

`install()` puts `RequestTimeout` in its place before the worker builds its app: the same
answer (504 with BentoML's body once `timeout` seconds pass without a response starting), and
the timer cancelled as soon as the response starts or the request ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestTimeout:
    """ASGI middleware: a request whose response has not started within `timeout` seconds
    is cancelled and answered 504 `{"error": "Not able to process the request in T seconds"}`
    (BentoML's wording). The request's timer lives only as long as the request."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(self.timeout, _time_out, started)

        async def send_started(message: Message) -> None:
            if not started.done():
                started.set_result(None)
                timer.cancel()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, send_started))
        task.add_done_callback(lambda _: _finish(started, timer))
        try:
            await started
        except asyncio.CancelledError:  # the server gave up on the request
            task.cancel()
            raise
        except TimeoutError:
            if task.cancel():
                await _refuse(scope, receive, send, self.timeout)
                return
        await task


def _time_out(started: asyncio.Future[None]) -> None:
    if not started.done():
        started.set_exception(TimeoutError())


def _finish(started: asyncio.Future[None], timer: asyncio.TimerHandle) -> None:
    """The app returned (or raised) without starting a response: nothing to wait for."""
    timer.cancel()
    if not started.done():
        started.set_result(None)


async def _refuse(scope: Scope, receive: Receive, send: Send, timeout: float) -> None:
    from starlette.responses import JSONResponse

    body = {"error": f"Not able to process the request in {timeout} seconds"}
    await JSONResponse(body, status_code=504)(scope, receive, send)


def install() -> None:
    """Make BentoML build `RequestTimeout` where it would build its own `TimeoutMiddleware`
    (its app looks the class up in `bentoml._internal.server.http.traffic` when it builds its
    middleware list, in each worker). Call before the worker builds its app."""
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = RequestTimeout  # type: ignore[misc,assignment]
