"""`--param STEP.NAME=VALUE`: a recipe step's param set for one run, from the command line.

VALUE is read as YAML, as the recipe file's own `params:` values are (PyYAML's safe loader):
`300` is an int, `0.1` a float, `true` a bool, `[a, b]` a list, `{k: 1}` a mapping, `"300"` a
string. Only a scalar or a flow collection is accepted: a block collection such as `a: b` is
almost always text meant to be quoted. The text is kept as typed, so the spine can record it
exactly and every process that runs a step reads the same value back from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

FORMAT = "STEP.NAME=VALUE"


class MalformedOverride(ValueError):
    """A `--param` that is not STEP.NAME=VALUE with a YAML VALUE; the message says why."""


@dataclass(frozen=True, slots=True)
class ParamOverride:
    """One `--param`: `step`'s param `name` set to the YAML `text` (as typed)."""

    step: str
    name: str
    text: str

    @property
    def value(self) -> Any:
        """The typed value (int, float, bool, str, None, list, dict, date, …)."""
        return parse_value(self.text)

    @property
    def key(self) -> tuple[str, str]:
        return (self.step, self.name)

    def __str__(self) -> str:
        return f"{self.step}.{self.name}={self.text}"


def parse_override(option: str) -> ParamOverride:
    """`"train.n_estimators=300"` -> ParamOverride("train", "n_estimators", "300").

    Raises MalformedOverride naming what is wrong (no `=`, no `.`, an empty part, a VALUE
    that is not one YAML scalar or flow collection)."""
    target, equals, text = option.partition("=")
    step, dot, name = target.partition(".")
    if not equals or not dot:
        raise MalformedOverride(f"{option!r} is not {FORMAT} (for example train.epochs=20)")
    if not _IDENTIFIER.match(step):
        raise MalformedOverride(f"{option!r}: {step!r} is not a step name")
    if not name:
        raise MalformedOverride(f"{option!r}: no param name after {step + '.'!r}")
    if not text.strip():
        raise MalformedOverride(
            f"{option!r}: no VALUE; write {step}.{name}=null for None, or "
            f"--param \"{step}.{name}=''\" for an empty string"
        )
    try:
        parse_value(text)
    except MalformedOverride as exc:
        raise MalformedOverride(f"{option!r}: {exc}") from None
    return ParamOverride(step, name, text)


def parse_value(text: str) -> Any:
    """VALUE typed as a YAML scalar or flow collection (PyYAML's safe loader).

    Raises MalformedOverride for invalid YAML, several documents, or a block collection."""
    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, yaml.SafeLoader)):
            # anchors and aliases repeat a value: a few bytes can expand to gigabytes
            raise MalformedOverride(f"VALUE {text[:80]!r}: YAML aliases (*name) are not allowed")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:  # only a comment
            raise MalformedOverride("VALUE is empty (a YAML comment only)")
        if isinstance(node, yaml.CollectionNode) and not node.flow_style:
            raise MalformedOverride(
                f"VALUE {text!r} reads as a YAML block collection; for text, put YAML quotes "
                f"inside VALUE (STEP.NAME='{text}'); write a list as [a, b], a mapping as {{a: b}}"
            )
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MalformedOverride(f"VALUE {text!r} is not valid YAML ({problem})") from None


def overrides_for(overrides: Iterable[ParamOverride], step: str) -> dict[str, Any]:
    """The typed values that `overrides` set on `step`, by param name."""
    return {o.name: o.value for o in overrides if o.step == step}


def same_value(left: Any, right: Any) -> bool:
    """Equal and of the same type (`1`, `1.0` and `true` are three different params)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, Mapping):
        return bool(left.keys() == right.keys()) and all(
            same_value(left[k], right[k]) for k in left
        )
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same_value, left, right))
    if isinstance(left, float) and left != left:  # .nan is the same param as .nan
        return bool(right != right)
    return bool(left == right)
