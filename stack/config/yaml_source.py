"""Read YAML keeping the line of every value, refusing duplicate keys, expanding ${ENV}.

Line numbers are what turn a validation error into something a user can fix: every error
mlstack reports about a file points at `file:line`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stack.errors import StackConfigError

Loc = tuple[str | int, ...]

# ${NAME} or ${NAME:-default}; $${...} stays literal.
_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed file: its values, and the line of each. `borrowed` maps the top-level keys
    this document took from another one (see `with_defaults`) to that document, so a problem
    in a borrowed part is reported at its own file and line."""

    path: Path
    data: Any
    lines: Mapping[Loc, int]
    borrowed: Mapping[str | int, YamlDocument] = field(default_factory=dict)

    def with_defaults(self, defaults: YamlDocument, keys: Sequence[str]) -> YamlDocument:
        """This mapping document with each of `keys` it lacks taken from `defaults`."""
        taken = [key for key in keys if key not in self.data and key in defaults.data]
        data = {**self.data, **{key: defaults.data[key] for key in taken}}
        borrowed: dict[str | int, YamlDocument] = {**self.borrowed}
        borrowed.update(dict.fromkeys(taken, defaults))
        return YamlDocument(path=self.path, data=data, lines=self.lines, borrowed=borrowed)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest part of `loc` that exists in the file."""
        parts = tuple(loc)
        if parts and parts[0] in self.borrowed:
            return self.borrowed[parts[0]].line_of(parts)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), None)

    def where(self, loc: Sequence[str | int]) -> str:
        if loc and loc[0] in self.borrowed:
            return self.borrowed[loc[0]].where(loc)
        line = self.line_of(loc)
        return f"{self.path}:{line}" if line else str(self.path)


def load_yaml(path: Path, *, environ: Mapping[str, str] | None = None) -> YamlDocument:
    """Parse `path` into plain Python values with a line for each, expanding ${ENV}."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StackConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StackConfigError(f"{path}: cannot be read ({exc})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise StackConfigError(f"{path}{line}: not valid YAML: {exc.problem}") from None
    if root is None:
        raise StackConfigError(f"{path}:1: the file is empty; expected a mapping of fields")
    lines: dict[Loc, int] = {}
    data = _Builder(path, env, lines).build(root, ())
    return YamlDocument(path=path, data=data, lines=lines)


class _Builder:
    def __init__(self, path: Path, env: Mapping[str, str], lines: dict[Loc, int]) -> None:
        self.path = path
        self.env = env
        self.lines = lines
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int):
                    raise StackConfigError(
                        f"{self.path}:{key_node.start_mark.line + 1}: keys must be text"
                    )
                if key in result:
                    raise StackConfigError(
                        f"{self.path}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                        f"(first at line {self.lines[(*loc, key)]})"
                    )
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, (*loc, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            return self._expand(value, loc, node.start_mark.line + 1)
        return value

    def _expand(self, text: str, loc: Loc, line: int) -> str:
        def substitute(match: re.Match[str]) -> str:
            escaped, name, default = match.group(1), match.group(2), match.group(3)
            if escaped:
                return match.group(0)[1:]
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            field = ".".join(str(p) for p in loc) or "(root)"
            raise StackConfigError(
                f"{self.path}:{line}: {field}: environment variable {name} is not set\n"
                f"  hint: export {name}=..., or give a default with ${{{name}:-value}}"
            )

        return _ENV_REF.sub(substitute, text)
