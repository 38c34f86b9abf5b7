"""docs/python-api.md is the docstrings of the step API, as they are now."""

from __future__ import annotations

import importlib
import inspect

from stack import apidoc


def test_the_page_matches_the_docstrings() -> None:
    assert apidoc.main(["--check"]) == 0, "docs/python-api.md is stale: python -m stack.apidoc"


def test_every_documented_call_says_what_it_does() -> None:
    undocumented = []
    for module, name, members in apidoc.ENTRIES:
        obj = getattr(importlib.import_module(module), name)
        for target in [obj, *(getattr(obj, m) for m in members or ())]:
            if not (inspect.getdoc(target) or "").strip():
                undocumented.append(f"{module}.{name}.{getattr(target, '__name__', '')}")
    assert not undocumented
