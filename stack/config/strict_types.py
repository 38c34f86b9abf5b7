"""Find the values pydantic's lax mode converted between booleans and numbers.

YAML reads `yes`, `no`, `on`, `off`, `true` and `false` as booleans, and pydantic's lax mode
turns a boolean into 1 or 0 where a number is expected (`batch_size: yes` ran as 1) and 0 or 1
into a boolean. Both are refused. Text that spells a number or a boolean is still converted,
so `port: ${PORT}` (always text once expanded) works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from stack.config.yaml_source import Loc

#: (where, problem, hint)
Coercion = tuple[Loc, str, str]


def bool_number_coercions(data: Any, value: Any, loc: Loc = ()) -> list[Coercion]:
    """Each place where `data` (as read from YAML) holds a boolean that `value` (what the
    model made of it) holds as a number, or a number it holds as a boolean."""
    if isinstance(data, bool):
        return [(loc, *boolean_as_number(data))] if _is_number(value) else []
    if _is_number(data):
        if isinstance(value, bool):
            return [
                (
                    loc,
                    f"{data!r} is a number, and true or false is expected here",
                    "write true or false",
                )
            ]
        return []
    found: list[Coercion] = []
    for key, item, converted in _children(data, value):
        found.extend(bool_number_coercions(item, converted, (*loc, key)))
    return found


def boolean_as_number(value: bool) -> tuple[str, str]:
    """The problem and hint for a YAML boolean where a number is expected."""
    return (
        f"{str(value).lower()} is a YAML boolean, and a number is expected here",
        "YAML reads yes/no, on/off and true/false as booleans; write a number",
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _children(data: Any, value: Any) -> list[tuple[str | int, Any, Any]]:
    """(key, what was read, what it became) for each part found in both."""
    if isinstance(data, Mapping):
        if isinstance(value, BaseModel):
            fields = type(value).model_fields
            return [(k, v, getattr(value, k)) for k, v in data.items() if k in fields]
        if isinstance(value, Mapping):
            return [(k, v, value[k]) for k, v in data.items() if k in value]
        return []
    if (
        isinstance(data, Sequence)
        and not isinstance(data, str)
        and isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(data) == len(value)
    ):
        return list(zip(range(len(data)), data, value, strict=True))
    return []
