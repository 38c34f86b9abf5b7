"""What the endpoint sends back is JSON a strict parser reads, whatever the model answered."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from stack_bentoml.answers import answer


def sent_body(payload: Any) -> bytes:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(answer(send, 200, payload))
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def test_nan_and_infinity_from_a_model_are_answered_as_null() -> None:
    payload = {
        "predictions": [[math.nan, 0.25], {"score": math.inf}, -math.inf, 1e308],
        "model_version": "m@1",
    }

    def strict(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    answered = json.loads(sent_body(payload), parse_constant=strict)
    assert answered["predictions"] == [[None, 0.25], {"score": None}, None, 1e308]


def test_finite_answers_are_sent_as_they_are() -> None:
    payload = {"predictions": [0.5, [1, 2]], "model_version": "m@1"}
    assert json.loads(sent_body(payload)) == payload
