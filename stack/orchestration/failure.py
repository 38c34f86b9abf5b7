"""What a failed step leaves to fix it by: where in the recipe's own code it failed, and its
whole traceback, kept with the run.

The error a user reads (and the spine records) is one exception line and the innermost frame
of the recipe's code (the line of `steps.py` that raised, or that called the library that
did); the whole traceback, library frames and chained causes too, is a file in the run's
folder, beside the steps' outputs: `<outputs>/<run_id>/<step>.traceback.txt`."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

from stack.atomic import write_atomic


@dataclass(frozen=True, slots=True)
class StepError:
    """`message`: the exception as Python's last traceback line says it; `where`: the
    innermost frame of the recipe's code (`steps.py:14, in train`), None when no frame was
    in it; `traceback`: the whole traceback, as Python prints it."""

    message: str
    where: str | None
    traceback: str

    @property
    def summary(self) -> str:
        """What the spine records as the step's error (and `mlstack runs` shows)."""
        return self.message if self.where is None else f"{self.message}\nat {self.where}"


def describe_failure(exc: BaseException, code_folders: tuple[Path, ...]) -> StepError:
    """`exc` as raised by a step whose own code lies in `code_folders` (the recipe's folder,
    the step module's)."""
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    folders = tuple(folder.resolve() for folder in code_folders)
    innermost = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if any(Path(frame.filename).resolve().is_relative_to(f) for f in folders):
            innermost = frame
    where = (
        f"{shown_path(Path(innermost.filename))}:{innermost.lineno}, in {innermost.name}"
        if innermost is not None
        else None
    )
    return StepError(message, where, "".join(traceback.format_exception(exc)))


def traceback_path(run_folder: Path, step: str) -> Path:
    """Where the whole traceback of `step`'s failure is kept in its run's folder."""
    return run_folder / f"{step}.traceback.txt"


def keep_traceback(run_folder: Path, step: str, error: StepError) -> Path | None:
    """Write the traceback into the run's folder; None when it cannot be written (a full
    disk must not hide the step's own error)."""
    path = traceback_path(run_folder, step)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, error.traceback)
    except OSError:
        return None
    return path


def shown_path(path: Path) -> str:
    """`path` as a user types it here: relative to the working folder when inside it."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(resolved)
