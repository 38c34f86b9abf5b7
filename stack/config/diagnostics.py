"""Turn pydantic's ValidationError into `file:line: field: problem` plus a hint."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from stack.config.yaml_source import Loc, YamlDocument
from stack.errors import StackConfigError


def config_error(
    doc: YamlDocument,
    exc: ValidationError,
    *,
    model: type[BaseModel] | None = None,
    prefix: Loc = (),
    title: str | None = None,
) -> StackConfigError:
    """One StackConfigError listing every problem of `exc`, each at its line in `doc`."""
    problems = []
    for error in exc.errors(include_url=False):
        loc: Loc = (*prefix, *error["loc"])
        problems.append(
            describe(doc, loc, error["msg"], hint=_hint(error, model, tuple(error["loc"])))
        )
    return collect(doc, problems, title=title)


def describe(doc: YamlDocument, loc: Sequence[str | int], message: str, hint: str = "") -> str:
    field = ".".join(str(p) for p in loc) or "(root)"
    text = f"{doc.where(loc)}: {field}: {message}"
    return f"{text}\n    hint: {hint}" if hint else text


def collect(
    doc: YamlDocument, problems: list[str], *, title: str | None = None
) -> StackConfigError:
    head = title or f"{doc.path} is not valid"
    noun = "problem" if len(problems) == 1 else "problems"
    message = f"{head} ({len(problems)} {noun}):\n  " + "\n  ".join(problems)
    return StackConfigError(message, problems)


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
