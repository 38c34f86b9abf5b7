"""Prove a saved model can be served before it is logged: load it where recipe code is not
importable and predict its input example, as the serving process will.

The check runs in a process of this environment started in an empty folder (so neither the
recipe's folder nor this process's imports help it), which keeps MLflow and pandas imported
and forks a child per model: each model is loaded by a process that has imported nothing of
the user's, in ~0.5 s instead of the ~3 s a new interpreter takes to import MLflow.

Run as `python -m stack_mlflow.servable`, it reads one model folder per line on stdin and
answers one JSON line per model: `{"ok": true}` or `{"ok": false, "stage": "load"|"predict",
"error": "ModuleNotFoundError: No module named 'x'", "missing_module": "x"}`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

CHILD_TIMEOUT_SECONDS = 300.0
IDLE_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    stage: str = ""
    error: str = ""
    missing_module: str | None = None


class _Checker:
    """The long-lived checking process, started on first use, restarted if it died."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()

    def check(self, model_dir: Path) -> Verdict:
        with self._lock:
            for attempt in range(2):
                process = self._running()
                assert process.stdin is not None and process.stdout is not None
                try:
                    process.stdin.write(str(model_dir.resolve()) + "\n")
                    process.stdin.flush()
                    line = process.stdout.readline()
                except (BrokenPipeError, OSError):
                    line = ""
                except BaseException:
                    # interrupted (Ctrl-C, a timeout signal) with an answer still to come: that
                    # answer belongs to this model, so the next one needs a checker of its own
                    self.close()
                    raise
                if line:
                    return Verdict(**json.loads(line))
                self.close()
                if attempt:
                    return Verdict(False, "load", "the checking process died")
        raise AssertionError("unreachable")

    def _running(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._folder = tempfile.TemporaryDirectory(prefix="mlstack-servable-")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "stack_mlflow.servable"],
            cwd=self._folder.name,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"},
        )
        return self._process

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                if process.stdin:
                    process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


_CHECKER = _Checker()
atexit.register(_CHECKER.close)


def check_servable(model_dir: Path) -> Verdict:
    """Load the MLflow model in `model_dir` with `mlflow.pyfunc.load_model` in a process that
    cannot import this one's user code, and predict its saved input example (if any)."""
    return _CHECKER.check(model_dir)


# -- the checking process ------------------------------------------------------------------


def _serve(stdin: IO[str], stdout: IO[str]) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import mlflow.pyfunc  # noqa: F401  (imported once, shared by every forked child)
    import pandas  # noqa: F401

    while True:
        # one request at a time (the client waits for each answer), so nothing is left in
        # stdin's buffer when select says the pipe is idle: a checker unused for a while exits
        # and frees its memory; the next log_model starts another
        ready, _, _ = select.select([stdin], [], [], IDLE_SECONDS)
        line = stdin.readline() if ready else ""
        if not line:
            return
        model_dir = line.strip()
        if model_dir:
            verdict = _fork_and_check(model_dir)
            stdout.write(json.dumps({k: v for k, v in verdict.items() if k != "warm"}) + "\n")
            stdout.flush()
            _warm(verdict.get("warm", ()))


# Libraries a model's flavor loads it with: once a child has imported them, this process does
# too, so the next model of that kind loads in a fraction of a second. Only these (known not
# to start threads at import, which would make forking unsafe), never user code.
_WARMABLE = ("mlflow", "sklearn", "skops", "scipy", "xgboost", "lightgbm", "onnx", "onnxruntime")


def _warm(names: Any) -> None:
    import importlib

    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _fork_and_check(model_dir: str) -> dict[str, Any]:
    import signal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: load, predict, report, exit without running parent cleanups
        os.close(read_end)
        before = set(sys.modules)
        try:
            verdict = _load_and_predict(model_dir)
        except BaseException as exc:
            verdict = {"ok": False, "stage": "load", "error": _describe(exc)}
        verdict["warm"] = sorted(
            n for n in set(sys.modules) - before if n.partition(".")[0] in _WARMABLE
        )
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(verdict))
        os._exit(0)
    os.close(write_end)
    # The answer is read until the child has exited, not until end of file: a process the
    # model's code forked holds the pipe open as long as it lives.
    os.set_blocking(read_end, False)
    deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
    chunks: list[bytes] = []
    status: int | None = None
    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return {
                "ok": False,
                "stage": "predict",
                "error": f"loading the model and predicting its example took over "
                f"{CHILD_TIMEOUT_SECONDS:g} s",
            }
        select.select([read_end], [], [], min(remaining, 0.5))
        chunks += _drain(read_end)
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = code
    chunks += _drain(read_end)
    os.close(read_end)
    text = b"".join(chunks).decode(errors="replace")
    if not text:
        return {
            "ok": False,
            "stage": "load",
            "error": f"the checking process died ({_why(status)})",
        }
    found: dict[str, Any] = json.loads(text)
    return found


def _drain(fd: int) -> list[bytes]:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return chunks
        if not chunk:
            return chunks
        chunks.append(chunk)


def _why(status: int) -> str:
    """A wait status in words: `killed by signal 11`, `exit code 3`."""
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _load_and_predict(model_dir: str) -> dict[str, Any]:
    import mlflow.pyfunc
    from mlflow.models import Model

    try:
        model = mlflow.pyfunc.load_model(model_dir)
    except BaseException as exc:
        return _failure("load", exc)
    try:
        example = Model.load(model_dir).load_input_example(model_dir)
        if example is not None:
            model.predict(example)
    except BaseException as exc:
        return _failure("predict", exc)
    return {"ok": True}


def _failure(stage: str, exc: BaseException) -> dict[str, Any]:
    missing = None
    cause: BaseException | None = exc
    while cause is not None:  # MLflow wraps import errors of the model's code
        if isinstance(cause, ModuleNotFoundError):
            missing = cause.name
            break
        cause = cause.__cause__ or cause.__context__
    return {"ok": False, "stage": stage, "error": _describe(exc), "missing_module": missing}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


if __name__ == "__main__":
    # Answers go out on a copy of stdout; what the model's code prints goes nowhere.
    answers = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    _serve(sys.stdin, answers)
    sys.exit(0)
