"""The request schema of an endpoint, derived from the model's MLflow signature.

Validation is pydantic's, in strict mode on the raw JSON bytes (one pass in Rust): a string
where a number belongs, a missing or unknown field, NaN or infinity, each is refused with
the field's name. Column names that are not identifiers are kept as aliases."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from stack_bentoml.spec import Column

_TYPES: dict[str, Any] = {
    "double": float,
    "float": float,
    "long": int,
    "integer": int,
    "boolean": bool,
    "string": str,
}


def record_model(columns: tuple[Column, ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for i, column in enumerate(columns):
        python_type = _TYPES.get(column.type, str)
        finite = False if python_type is float else None
        if column.required:
            fields[f"f{i}"] = (python_type, Field(alias=column.name, allow_inf_nan=finite))
        else:
            fields[f"f{i}"] = (
                python_type | None,
                Field(None, alias=column.name, allow_inf_nan=finite),
            )
    config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)
    return create_model("Record", __config__=config, **fields)


class RequestSchema:
    """Parses a request body (one record, or a list of records) into rows in column order."""

    def __init__(self, columns: tuple[Column, ...], max_rows: int) -> None:
        self.columns = columns
        self.names = [c.name for c in columns]
        self.record = record_model(columns)
        self.single = TypeAdapter(self.record)
        self.batch = TypeAdapter(list[self.record])  # type: ignore[name-defined]
        self.max_rows = max_rows

    def parse(self, body: bytes) -> list[list[Any]]:
        """Rows in column order; raises ValidationError or ValueError (for the 4xx answer)."""
        stripped = body.lstrip()
        if stripped[:1] == b"[":
            records = self.batch.validate_json(body)
            if not records:
                raise ValueError("the request holds no records")
            if len(records) > self.max_rows:
                raise ValueError(f"{len(records)} records; at most {self.max_rows} per request")
        else:
            records = [self.single.validate_json(body)]
        return [list(r.__dict__.values()) for r in records]

    def openapi_schema(self) -> dict[str, Any]:
        one = self.record.model_json_schema(by_alias=True)
        return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1}]}


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """Each error as {field, problem}; the field is the column name the client sent."""
    found = []
    for error in exc.errors(include_url=False):
        location = [str(part) for part in error["loc"] if not isinstance(part, int)]
        rows = [part for part in error["loc"] if isinstance(part, int)]
        field = ".".join(location) or "body"
        entry = {"field": field, "problem": error["msg"]}
        if rows:
            entry["record"] = str(rows[0])
        found.append(entry)
    return found
