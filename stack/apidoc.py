"""The Python API a recipe step uses, rendered from its docstrings into docs/python-api.md.

`python -m stack.apidoc` writes the page; `python -m stack.apidoc --check` exits 1 when the
page differs from the docstrings (the test suite runs the check)."""

from __future__ import annotations

import importlib
import inspect
import sys
from enum import Enum
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"

#: (module, object, members to show: None for a function or a data class shown whole)
ENTRIES: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("stack.orchestration.steps", "StepContext", None),
    (
        "stack.contract.tracking",
        "Tracker",
        (
            "start_run",
            "log_params",
            "log_metrics",
            "set_tags",
            "log_artifact",
            "log_dataset",
            "log_model",
            "finish_run",
            "get_run",
            "metric_history",
        ),
    ),
    ("stack.contract.tracking", "DatasetFingerprint", None),
    ("stack.monitoring.reference", "save_reference", None),
    ("stack.lifecycle", "Lifecycle", ("register",)),
    ("stack.governance.service", "Governance", ("version", "promote", "approve")),
    ("stack.session", "StackSession", ("open", "recipe_for", "with_recipe")),
)

INTRO = """# The Python API of a recipe step

Generated from the docstrings by `python -m stack.apidoc`; do not edit by hand. A step
receives `ctx: StepContext` when it has a parameter named `ctx`; `ctx.session.tracker` is a
`Tracker`. [your-model.md](your-model.md) uses each of these from an empty folder.
"""


def _doc(obj: object) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "(undocumented)")


def _signature(name: str, obj: object) -> str:
    """`name(a: int, *, b: str = 'x') -> Path`, annotations as written (not quoted)."""
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return name
    params = []
    star = False
    for p in signature.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        prefix = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
        star = star or p.kind is p.VAR_POSITIONAL
        text = prefix + p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            default = p.default
            shown = (
                f"{type(default).__name__}.{default.name}"
                if isinstance(default, Enum)
                else repr(default)
            )
            text += f" = {shown}"
        params.append(text)
    returns = ""
    if signature.return_annotation is not signature.empty:
        returns = f" -> {_annotation(signature.return_annotation)}"
    return f"{name}({', '.join(params)}){returns}"


def _annotation(annotation: object) -> str:
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def render() -> str:
    """The page, as text."""
    parts = [INTRO]
    for module_name, name, members in ENTRIES:
        obj = getattr(importlib.import_module(module_name), name)
        parts.append(f"## `{module_name}.{name}`\n\n{_doc(obj)}\n")
        if members is None and inspect.isfunction(obj):
            parts[-1] = f"## `{module_name}.{name}`\n\n```python\n{_signature(name, obj)}\n```\n\n"
            parts[-1] += f"{_doc(obj)}\n"
        for member in members or ():
            method = getattr(obj, member)
            parts.append(
                f"### `{name}.{member}`\n\n```python\n{_signature(member, method)}\n```\n\n"
                f"{_doc(method)}\n"
            )
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = PAGE.read_text() if PAGE.is_file() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python -m stack.apidoc", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
