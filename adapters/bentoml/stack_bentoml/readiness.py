"""`/readyz` that tells a degraded endpoint from a healthy one, still answering 200.

BentoML answers `/readyz` itself, with an empty body; a worker whose prediction log refuses
rows still answers every request, so it stays ready (a Kubernetes probe keeps it in
rotation). This ASGI middleware leaves BentoML's answer alone while nothing is wrong, and
otherwise replaces a 200's body with JSON saying why:
`{"status": "degraded", "reasons": ["prediction log unwritable since …"]}` (header
`x-mlstack-status: degraded`). Every other path passes straight through."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

READY_PATH = "/readyz"


class DegradedReadiness:
    def __init__(self, app: Any, reasons: Callable[[], list[str]]) -> None:
        self.app = app
        self.reasons = reasons

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != READY_PATH:
            await self.app(scope, receive, send)
            return
        reasons = self.reasons()
        if not reasons:
            await self.app(scope, receive, send)
            return
        messages: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, keep)
        if not messages or messages[0].get("status") != 200:  # not ready: BentoML's answer
            for message in messages:
                await send(message)
            return
        body = json.dumps({"status": "degraded", "reasons": reasons}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-mlstack-status", b"degraded"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
