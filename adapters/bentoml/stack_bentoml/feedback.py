"""`POST /feedback`: ground truth for earlier answers, sent by the caller when it learns it.

A label names the request it belongs to (`request_id`, as the endpoint returned it in the
`x-request-id` header) and the record of that request (`row`, 0 for a single record). Labels
go to the prediction log beside the answers (role `feedback`): one log, written off the
request path, that monitoring reads and joins."""

from __future__ import annotations

import json
import math
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    field_validator,
)
from pydantic_core import from_json

from stack_bentoml.predictlog import Prediction

Label = StrictBool | StrictInt | StrictFloat | StrictStr
REQUEST_ID_PATTERN = "^[ -~]+$"


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # what the endpoint issues (printable ASCII): a lone surrogate or a NUL cannot be stored
    request_id: Annotated[str, Field(min_length=1, max_length=128, pattern=REQUEST_ID_PATTERN)]
    label: Label
    row: Annotated[StrictInt, Field(ge=0)] = 0

    @field_validator("label", mode="before")
    @classmethod
    def _one_value(cls, value: object) -> object:
        """One error naming what a label may be, not one per branch of the union."""
        if not isinstance(value, bool | int | float | str):
            given = "null" if value is None else type(value).__name__
            raise ValueError(f"a label is a number, a boolean or a string, not {given}")
        return value


_ONE: dict[str, object] = {
    "type": "object",
    "required": ["request_id", "label"],
    "additionalProperties": False,
    "properties": {
        "request_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": REQUEST_ID_PATTERN,
        },
        "label": {"type": ["number", "string", "boolean"]},
        "row": {"type": "integer", "minimum": 0},
    },
}
#: The body's schema, as `/openapi.json` publishes it: one label, or a list of them.
FEEDBACK_SCHEMA: dict[str, object] = {
    "oneOf": [_ONE, {"type": "array", "items": _ONE, "minItems": 1}]
}

_MANY: TypeAdapter[list[Feedback]] = TypeAdapter(list[Feedback])


def parse_feedback(body: bytes, max_items: int) -> list[Feedback]:
    """The labels in a body (one object, or a list of at most `max_items`); raises
    pydantic's ValidationError naming the field at fault, or ValueError."""
    try:  # pydantic's parser: UTF-8 only, and nesting beyond 200 refused at once
        document = from_json(body)
    except ValueError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if isinstance(document, list):
        if not document:
            raise ValueError("an empty list: send at least one label")
        if len(document) > max_items:
            raise ValueError(f"{len(document)} labels in one request; at most {max_items}")
        items = _MANY.validate_python(document)
    else:
        items = [Feedback.model_validate(document)]
    for item in items:
        if isinstance(item.label, float) and not math.isfinite(item.label):
            raise ValueError(f"the label for {item.request_id!r} is not a finite number")
    return items


def feedback_entries(items: list[Feedback], *, endpoint: str, now: float) -> list[Prediction]:
    return [
        Prediction(
            request_id=item.request_id,
            ts=now,
            endpoint=endpoint,
            model_version="",
            role="feedback",
            status=202,
            latency_ms=0.0,
            inputs=json.dumps([{"row": item.row}]),
            output=[item.label],
        )
        for item in items
    ]
