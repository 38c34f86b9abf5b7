"""A worker's refusal of a revision, as a file beside the endpoint file: the worker writes
why it cannot put the revision in force (a model that fails to load, code it cannot import),
and the adapter, waiting on that file, fails the deploy or the route at once saying why."""

from __future__ import annotations

import traceback
from pathlib import Path

from stack.atomic import write_atomic

REFUSAL_PREFIX = "refused-r"


def refusal_path(folder: Path, revision: int) -> Path:
    """The file in which a worker says it refused `revision` of the endpoint in `folder`:
    its first line is the exception (`VersionLoadFailed: churn@3 could not be loaded: …`),
    then the traceback. Revisions are never reused, so the file is never stale."""
    return folder / f"{REFUSAL_PREFIX}{revision}.txt"


def write_refusal(folder: Path, revision: int, exc: BaseException) -> None:
    """Written atomically (several workers may refuse the same revision); never raises, so
    that the refusal itself is what the worker reports."""
    text = f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc))
    try:
        write_atomic(refusal_path(folder, revision), text)
    except OSError as error:  # a read-only folder (a container): the log still says why
        print(f"mlstack endpoint: cannot record the refusal ({error})", flush=True)
