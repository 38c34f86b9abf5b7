"""Turn pydantic's ValidationError into `file:line: field: problem` plus a hint."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from stack.config.strict_types import bool_number_coercions, boolean_as_number
from stack.config.yaml_source import Loc, YamlDocument
from stack.errors import StackConfigError

M = TypeVar("M", bound=BaseModel)


def validated(doc: YamlDocument, model: type[M], data: Any, *, prefix: Loc = ()) -> M:
    """`data` (the part of `doc` at `prefix`) as a `model`, or a StackConfigError listing
    every problem at its line: pydantic's, and booleans read as numbers or numbers as
    booleans (see `stack.config.strict_types`)."""
    result = checked(doc, model, data, prefix=prefix)
    if result.problems or result.value is None:
        raise collect(doc, result.problems)
    return result.value


@dataclass(frozen=True)
class Checked(Generic[M]):
    """What `checked` found: every problem, and a model to run the later checks on.

    `value` is the model with each top-level field that had a problem (`dropped`) left at its
    default or a stand-in, so that one run reports the problems of the other fields too (a
    recipe's step functions beside a typo under `rollout:`); None when even that is not valid.
    With problems, `value` is for further checks only, never for a run."""

    value: M | None
    problems: list[str]
    dropped: frozenset[str] = frozenset()


def checked(
    doc: YamlDocument,
    model: type[M],
    data: Any,
    *,
    prefix: Loc = (),
    stand_ins: Mapping[str, Any] | None = None,
) -> Checked[M]:
    """`data` checked as in `validated`, without raising; `stand_ins` replace required
    top-level fields that had a problem (`{"name": "recipe"}`)."""
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        problems = config_error(doc, exc, model=model, prefix=prefix).problems
        dropped = frozenset(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        return Checked(_salvaged(model, data, dropped, stand_ins or {}), problems, dropped)
    coercions = bool_number_coercions(data, value)
    problems = [describe(doc, (*prefix, *loc), why, hint) for loc, why, hint in coercions]
    return Checked(value, problems, frozenset(str(loc[0]) for loc, _, _ in coercions if loc))


def _salvaged(
    model: type[M], data: Any, dropped: frozenset[str], stand_ins: Mapping[str, Any]
) -> M | None:
    if not dropped or not isinstance(data, dict):
        return None
    rest = {key: value for key, value in data.items() if key not in dropped}
    rest.update({key: value for key, value in stand_ins.items() if key in dropped})
    try:
        return model.model_validate(rest)
    except ValidationError:
        return None


def config_error(
    doc: YamlDocument,
    exc: ValidationError,
    *,
    model: type[BaseModel] | None = None,
    prefix: Loc = (),
    title: str | None = None,
) -> StackConfigError:
    """One StackConfigError listing every problem of `exc`, each at its line in `doc`."""
    errors = exc.errors(include_url=False)
    problems = []
    for error in errors:
        if _follows_from_its_items(error, errors):
            continue
        at = tuple(part for part in error["loc"] if part != "[key]")
        if isinstance(error.get("input"), bool) and error["type"] in _NUMBER_CHECKS:
            message, hint = boolean_as_number(error["input"])
        else:
            message, hint = _message(error), _hint(error, model, at)
        problems.append(describe(doc, (*prefix, *at), message, hint=hint))
    return collect(doc, problems, title=title)


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """ "did you mean 'closest'? " when one of `choices` is close to `name`, else ""."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def describe(doc: YamlDocument, loc: Sequence[str | int], message: str, hint: str = "") -> str:
    field = ".".join(str(p) for p in loc) or "(root)"
    text = f"{doc.where(loc)}: {field}: {message}"
    return f"{text}\n    hint: {hint}" if hint else text


def collect(
    doc: YamlDocument | Path, problems: list[str], *, title: str | None = None
) -> StackConfigError:
    """One StackConfigError listing `problems`, headed `title` or "FILE is not valid"."""
    head = title or f"{doc if isinstance(doc, Path) else doc.path} is not valid"
    noun = "problem" if len(problems) == 1 else "problems"
    message = f"{head} ({len(problems)} {noun}):\n  " + "\n  ".join(problems)
    return StackConfigError(message, problems)


#: pydantic errors about a number's value: given a boolean (read as 0 or 1), the boolean is
#: the problem, not the bound.
_NUMBER_CHECKS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"}
)


def _follows_from_its_items(error: Any, errors: Sequence[Any]) -> bool:
    """A list's "too short" that only says one of its items was refused (pydantic counts the
    items that passed), when that item's own error is listed."""
    loc = tuple(error["loc"])
    return error["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _message(error: Any) -> str:
    """pydantic's message, without the "Value error, " it puts before a validator's own."""
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return str(error["msg"])


def _hint(error: Any, model: type[BaseModel] | None, loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden" and model is not None:
        allowed = _fields_at(model, loc[:-1])
        if allowed:
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            if close:
                return f"did you mean {close[0]!r}?"
            return "allowed fields here: " + ", ".join(sorted(allowed))
    if kind == "missing":
        return f"add `{loc[-1]}:`" if loc else ""
    if kind == "string_type" and isinstance(error.get("input"), int | float):
        return "YAML reads 2024, 1.5, yes and no as numbers and booleans; quote text"
    if kind in ("tuple_type", "list_type") and not isinstance(error.get("input"), list):
        return f"write a list, even of one: [{error.get('input')}]"
    return ""


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Names of the fields accepted at `loc`, following nested models through lists and dicts."""
    current: Any = model
    for part in loc:
        if _is_model(current):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:  # `part` indexes a list or keys a dict: step into its item type
            current = _model_inside(current)
            if current is None:
                return []
    found = current if _is_model(current) else _model_inside(current)
    return list(found.model_fields) if found is not None else []


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_inside(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_inside(arg)
        if found is not None:
            return found
    return None
