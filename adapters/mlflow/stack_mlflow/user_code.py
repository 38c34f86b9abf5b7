"""Which of this process's modules a serving process could not import, and pickling them by value.

A model pickled here refers to its classes by module name. Installed packages (and mlstack's own,
editable or not) are importable wherever the model is served; a recipe's step modules (imported
under a name unique to the recipe, see `stack.orchestration.steps`), their neighbours, test modules
and a project's loose scripts are not. Those are "user code": cloudpickle stores their classes and
functions by value, so the model carries the code it needs (MLflow's own advice for custom
models defined outside an installed package; cloudpickle's `register_pickle_by_value`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from importlib.machinery import PathFinder
from pathlib import Path
from types import ModuleType

_ENVIRONMENT = tuple({os.path.join(sys.prefix, ""), os.path.join(sys.base_prefix, "")})


@functools.cache
def fresh_sys_path() -> tuple[str, ...]:
    """`sys.path` of a new interpreter of this environment started in an empty folder, as the
    serving process is (`python -m bentoml serve` in the endpoint's folder)."""
    with tempfile.TemporaryDirectory(prefix="mlstack-path-") as empty:
        printed = subprocess.run(
            [sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
            cwd=empty,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    return tuple(json.loads(printed))


def is_user_code(module: ModuleType) -> bool:
    """True when a fresh interpreter would not find `module` under its name at the same file."""
    name = module.__name__
    if name == "__main__":  # cloudpickle already stores __main__ by value
        return False
    origin = getattr(module, "__file__", None)
    if not origin:  # built-in and namespace modules are the environment's
        return False
    if origin.startswith(_ENVIRONMENT):  # installed in this environment or the standard library
        return False
    found = _found_fresh(name.partition(".")[0])
    if found is None:
        return True
    single, roots = found
    if single is not None:
        return not _same(single, Path(origin))
    return not any(_inside(Path(origin), root) for root in roots)


@functools.cache
def _found_fresh(top: str) -> tuple[Path | None, tuple[Path, ...]] | None:
    """Where a fresh interpreter finds top-level module `top`: its file, or its package roots."""
    found = PathFinder.find_spec(top, list(fresh_sys_path()))
    if found is None:
        return None
    roots = tuple(Path(p).resolve() for p in (found.submodule_search_locations or []))
    if found.origin and not roots:
        return Path(found.origin), ()
    return None, roots


def user_modules(names: Iterable[str] | None = None) -> list[ModuleType]:
    """The user-code modules among `names` (default: every module imported in this process)."""
    chosen = dict(sys.modules) if names is None else {n: sys.modules.get(n) for n in names}
    return [
        module
        for name, module in chosen.items()
        # a module filed under another name (an extension's alias) is not one to register
        if isinstance(module, ModuleType) and module.__name__ == name and is_user_code(module)
    ]


@contextlib.contextmanager
def pickled_by_value(modules: Iterable[ModuleType]) -> Iterator[None]:
    """While inside, cloudpickle stores these modules' objects by value (then back as it was)."""
    import cloudpickle

    added = []
    for module in modules:
        if module.__name__ not in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.register_pickle_by_value(module)
            added.append(module)
    try:
        yield
    finally:
        for module in added:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(module)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
