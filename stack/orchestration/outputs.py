"""Step outputs on disk, so a failed run can be resumed in another process."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

from stack.atomic import write_atomic
from stack.errors import StackError


def save_output(directory: Path, step: str, value: Any) -> tuple[str, str]:
    """Pickle `value` atomically; returns (path, sha256 of the bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise StackError(
            f"step {step!r} returned a value that cannot be saved for resume "
            f"({type(exc).__name__}: {exc}); return plain data, or write files to ctx.workdir"
        ) from exc
    path = directory / f"{step}.pkl"
    write_atomic(path, data)
    return str(path), hashlib.sha256(data).hexdigest()


def load_output(uri: str, digest: str | None) -> Any:
    """Unpickle an output written by `save_output`, refusing one that changed on disk.

    Only files this orchestrator wrote under the stack's home are ever loaded.
    """
    data = Path(uri).read_bytes()
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise StackError(f"step output {uri} changed since it was written; cannot resume from it")
    return pickle.loads(data)
