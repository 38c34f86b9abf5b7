"""The request schema of an endpoint, derived from the model's MLflow signature.

Validation is pydantic's, in strict mode on the raw JSON bytes (one pass in Rust): a string
where a number belongs, a missing or unknown field, NaN or infinity, each is refused with
the field's name. Column names that are not identifiers are kept as aliases.

What each MLflow type takes, as JSON:

- `integer` / `long`: an integer within int32 / int64 (no fraction, not even `2.0`);
- `float` / `double`: a finite number within float32 / float64 (an integer is taken too);
- `boolean`: true or false; `string`: a string;
- `datetime`: an ISO 8601 string, a date-time (`2024-05-01T12:00:00`; with an offset, it is
  converted to UTC) or a date (`2024-05-01`, midnight): naive, as MLflow takes it, and
  within 1677-09-22 to 2262-04-11 (what datetime64[ns] holds);
- `binary`: a base64 string;
- `array` / `map` / `object`: a list / an object of the item type / an object with exactly
  the signature's properties; `any`: any JSON value.

An optional column (`required: false`) may be null or left out. A numeric column may be
narrower than its type: the bounds the model was found to take (probe.py), given as
`bounds`, refused beyond with the bound in the message and stated in the OpenAPI schema."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from stack_bentoml.spec import Column, check_type

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max
# within pandas' Timestamp.min / max (1677-09-21 00:12:43 / 2262-04-11 23:47:16)
DATETIME_RANGE = (datetime(1677, 9, 22), datetime(2262, 4, 11))

_STRICT = ConfigDict(extra="forbid", strict=True)


def _iso_datetime(value: Any) -> Any:
    """An ISO 8601 date or date-time string as a naive UTC datetime (MLflow takes naive
    ones only); anything else is left for the strict check to refuse."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "expected an ISO 8601 date or date-time, such as 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    try:
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        inside = DATETIME_RANGE[0] <= parsed <= DATETIME_RANGE[1]
    except OverflowError:  # the offset crosses year 1 or 9999
        inside = False
    if not inside:  # numpy would wrap it around silently
        raise ValueError(
            f"outside what a datetime column holds (datetime64[ns]): "
            f"{DATETIME_RANGE[0]:%Y-%m-%d} to {DATETIME_RANGE[1]:%Y-%m-%d}"
        )
    return parsed


def _base64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"expected base64 (a binary column): {exc}") from None


_SCALARS: dict[str, Any] = {
    "double": Annotated[float, Field(allow_inf_nan=False)],
    "float": Annotated[float, Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)],
    "long": Annotated[int, Field(ge=INT64[0], le=INT64[1])],
    "integer": Annotated[int, Field(ge=INT32[0], le=INT32[1])],
    "boolean": bool,
    "string": str,
    "datetime": Annotated[datetime, BeforeValidator(_iso_datetime)],
    "binary": Annotated[str, AfterValidator(_base64), Field(json_schema_extra={"format": "byte"})],
}


def annotation(node: dict[str, Any]) -> Any:
    """The Python type (with its bounds) that validates a value of MLflow type `node`
    (`{"type": "long"}`, `{"type": "array", "items": {...}}`, ...), checked beforehand by
    `spec.check_type`; ValueError for a type serving does not know."""
    kind = node.get("type")
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        return list[annotation(node["items"])]  # type: ignore[misc]
    if kind == "map":
        return dict[str, annotation(node["values"])]  # type: ignore[misc]
    if kind == "any":
        return Any
    if kind == "object":
        fields: dict[str, Any] = {}
        for key, prop in node["properties"].items():
            inner = annotation(prop)
            fields[key] = inner if prop.get("required", True) else NotRequired[inner | None]
        # a TypedDict validates to a plain dict, which is what MLflow's enforcement takes
        make: Any = TypedDict  # built from the signature, so not a literal mypy can check
        typed = make("Object", fields)
        typed.__pydantic_config__ = _STRICT
        return typed
    raise ValueError(f"no request type for MLflow type {node!r}")


def record_model(
    columns: tuple[Column, ...], bounds: Mapping[str, tuple[float, float]] | None = None
) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for i, column in enumerate(columns):
        check_type(column.type_json(), f"column {column.name!r}")
        python_type = annotation(column.type_json())
        if bounds and column.name in bounds:  # the later bounds replace the type's own
            low, high = bounds[column.name]
            python_type = Annotated[python_type, Field(ge=low, le=high)]
        if column.required:
            fields[f"f{i}"] = (python_type, Field(alias=column.name))
        else:
            fields[f"f{i}"] = (python_type | None, Field(None, alias=column.name))
    config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)
    return create_model("Record", __config__=config, **fields)


class RequestSchema:
    """Parses a request body (one record, or a list of records) into rows in column order;
    `bounds` narrows numeric columns by name to `(lowest, highest)`."""

    def __init__(
        self,
        columns: tuple[Column, ...],
        max_rows: int,
        bounds: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.columns = columns
        self.names = [c.name for c in columns]
        self.record = record_model(columns, bounds)
        self.single = TypeAdapter(self.record)
        self.batch = TypeAdapter(list[self.record])  # type: ignore[name-defined]
        self.max_rows = max_rows
        #: whether a column takes any JSON (type `any`): then only the endpoint's depth
        #: limit bounds how deeply a request nests, not the signature
        self.unbounded = any(_takes_any(c.type_json()) for c in columns)

    def parse(self, body: bytes) -> list[list[Any]]:
        """Rows in column order, each value as validated (int, float, bool, str, naive
        datetime, bytes, list, dict; None for a missing optional one); raises ValidationError or
        ValueError (for the 4xx answer)."""
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


def _takes_any(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("type") == "any" or any(_takes_any(v) for v in node.values())
    return False


#: Pydantic's messages for a bound, whose float bounds it writes digit by digit (float32's
#: largest as a 39-digit integer): written here as a number is read.
_BOUNDS = {
    "less_than_equal": ("le", "less than or equal to"),
    "greater_than_equal": ("ge", "greater than or equal to"),
}


def _message(error: Any) -> str:
    kind = _BOUNDS.get(error["type"])
    bound = (error.get("ctx") or {}).get(kind[0]) if kind else None
    if kind is None or not isinstance(bound, float):
        return str(error["msg"])
    named = {FLOAT32_MAX: " (float32's largest)", -FLOAT32_MAX: " (float32's lowest)"}
    return f"Input should be {kind[1]} {bound:.9g}{named.get(bound, '')}"


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """Each error as {field, problem}; the field is the column name the client sent."""
    found = []
    for error in exc.errors(include_url=False):
        location = list(error["loc"])
        record = location.pop(0) if location and isinstance(location[0], int) else None
        # inside a column, the path goes on: `tags.2`, `address.zip`
        entry = {"field": ".".join(str(part) for part in location) or "body"}
        entry["problem"] = _message(error)
        if record is not None:
            entry["record"] = str(record)
        found.append(entry)
    return found
