"""Challengers in processes of their own.

The champion (the heaviest version on the endpoint) runs inside the worker; every other
version — a canary, an A/B arm, a shadow — runs in a child process the worker talks to over
a pipe. If a challenger's process crashes (a segfault in native code, the OOM killer), its
requests fail fast and the champion answers them: the worker, and every request the
champion could answer, survive. Each child writes its pid under the endpoint's folder, so
that an operator (or a test) can find it; it exits when its worker is gone (lineage.py)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from stack_bentoml.lineage import watch_parent
from stack_bentoml.runtime import LoadedVersion, load_version
from stack_bentoml.spec import VersionSpec

_CONTEXT = multiprocessing.get_context("spawn")  # the worker has threads: never fork it


class ChallengerDied(RuntimeError):
    """The challenger's process is gone; its requests go to the champion."""


def _serve(spec_json: str, connection: Connection, pid_dir: str) -> None:  # in the child
    watch_parent()  # a challenger outliving its worker would hold its model's memory for good
    spec = VersionSpec.model_validate_json(spec_json)
    try:
        version = load_version(spec)
    except Exception as exc:  # so that the worker can say why, not only that it exited
        connection.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    pid_file = Path(pid_dir) / f"{spec.ref.replace('@', '-v')}.{os.getpid()}.pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))  # once it serves
    try:
        connection.send(("ready", None))
        while True:
            try:
                rows = connection.recv()
            except EOFError:
                return
            try:
                connection.send(("ok", version.predict(rows)))
            except Exception as exc:  # with its traceback: the worker logs it, not ours
                detail = "".join(traceback.format_exception(exc))
                connection.send(
                    ("error", f"{type(exc).__name__}: {exc}\n\nin {spec.ref}'s process:\n{detail}")
                )
    finally:
        pid_file.unlink(missing_ok=True)


def load_isolated(spec: VersionSpec, pid_dir: Path, timeout: float = 300.0) -> LoadedVersion:
    """Start the child, wait until its model is loaded, and return a predict that calls it."""
    parent, child = _CONTEXT.Pipe()
    process = _CONTEXT.Process(
        target=_serve, args=(spec.model_dump_json(), child, str(pid_dir)), daemon=True
    )
    process.start()
    child.close()
    if not parent.poll(timeout):
        process.kill()
        raise RuntimeError(f"{spec.ref}: its process did not load the model in {timeout:g} s")
    try:
        status, detail = parent.recv()
    except EOFError:
        status, detail = "exited", None
    if status != "ready":
        process.join(5)
        raise RuntimeError(f"{spec.ref}: its process failed to load the model ({detail or status})")
    lock = threading.Lock()  # the request path and the shadow thread share the pipe

    def predict(rows: list[list[Any]]) -> list[Any]:
        with lock:
            try:
                parent.send(rows)
                status, value = parent.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                raise ChallengerDied(f"{spec.ref}: its process has exited ({exc})") from exc
        if status != "ok":
            raise RuntimeError(value)
        result: list[Any] = value
        return result

    return LoadedVersion(spec.ref, predict)
