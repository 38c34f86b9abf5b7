"""What the endpoint sends: a JSON body a strict parser reads, with its length and headers."""

from __future__ import annotations

import json
import math
from typing import Any

JSON_HEADERS = [(b"content-type", b"application/json")]
Headers = list[tuple[bytes, bytes]]


def finite(value: Any) -> Any:
    """`value` with every NaN and ±inf replaced by None (what strict JSON parsers accept)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def encode(payload: Any) -> bytes:
    try:
        return json.dumps(payload, allow_nan=False).encode()
    except ValueError:  # a model answered NaN or ±inf: JSON has no such number, so null
        return json.dumps(finite(payload), allow_nan=False).encode()


async def answer(send: Any, status: int, payload: Any, headers: Headers | None = None) -> None:
    await send_body(send, status, encode(payload), headers)


async def send_body(send: Any, status: int, body: bytes, headers: Headers | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *JSON_HEADERS,
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
