"""`mlstack` commands in processes forked from one that has imported mlstack and the libraries
its commands import (MLflow, pandas, scikit-learn, SQLAlchemy): each command still runs in a
process of its own, through the console script (its `__main__`), in its folder, with the
environment of the call, and ends with its own exit code (`-9` when killed), but it starts
in milliseconds instead of the 1-4 s of CPU a new interpreter spends on those imports. The
suite starts hundreds of commands on two cores.

The server is this file run as a script (`python forkserver.py SOCKET`), one per pytest
process, started on first use with the environment pytest started with and the wrapped
tools' analytics off, as the console script turns them off before it imports a tool. It
forks nothing but commands: a request (one JSON line on a Unix socket connection) names
the arguments, folder, environment and the files for stdout and stderr; the answer is the
child's pid, then, when it ends, its exit code. A forked child, before it runs the command:

- takes the call's folder, environment, `sys.argv` and `sys.path[0]` (the script's folder),
  stdin from /dev/null, and stdout and stderr onto the given files (file descriptors 1 and 2,
  so handlers the libraries made at import write there too);
- writes stdout and stderr through when the environment has PYTHONUNBUFFERED, as `python -u`;
- puts back the default signal handlers and reseeds NumPy's global generator (`random`
  reseeds itself after a fork), as a new process would have them.

What a fork cannot give is a process that has not imported those libraries: tests of what a
command imports, or of a tool's behaviour chosen at import, start `mlstack` as a new process
(`cli_in(folder, fresh=True)`)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import socket
import sys
from typing import Any

# what the commands import: every module of mlstack and of its MLflow adapter (not the
# migrations, run by alembic, nor the test kit, which imports pytest), and these libraries
PACKAGES = ("stack", "stack_mlflow")
SKIPPED = ("stack.cli.__main__", "stack.spine.migrations", "stack.testing")
LIBRARIES = ("mlflow.pyfunc", "pandas", "pyarrow.parquet", "sklearn.ensemble", "sklearn.pipeline")


def _serve(path: str) -> dict[str, Any]:
    """Answer requests until stdin closes (the pytest process ended); in a forked child,
    return its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    waiting: dict[int, socket.socket] = {}  # child pid -> the connection that asked for it
    ended, wakeup = os.pipe()  # a byte each time a child ends
    os.set_blocking(wakeup, False)
    signal.set_wakeup_fd(wakeup)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        readable, _, _ = select.select([listener, sys.stdin, ended], [], [], 1.0)
        if ended in readable:
            os.read(ended, 4096)
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            connection = waiting.pop(pid, None)
            if connection is not None:
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                _answer(connection, {"exit": code})
                connection.close()
        if sys.stdin in readable and not sys.stdin.buffer.read1(1):
            os._exit(0)
        if listener in readable:
            connection, _ = listener.accept()
            request = json.loads(_line(connection))
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                os.close(ended)
                os.close(wakeup)
                listener.close()
                for other in waiting.values():
                    other.close()
                connection.close()
                return request  # type: ignore[no-any-return]
            waiting[pid] = connection
            _answer(connection, {"pid": pid})


def _line(connection: socket.socket) -> bytes:
    """One newline-ended message, read without a buffer that would outlive it."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _answer(connection: socket.socket, message: dict[str, int]) -> None:
    with contextlib.suppress(OSError):  # the caller gave up on it
        connection.sendall(json.dumps(message).encode() + b"\n")


def _become(request: dict[str, Any]) -> None:
    """This forked child as a new process of the command would be."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, name, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY),
        (2, request["stderr"], os.O_WRONLY),
    ):
        opened = os.open(name, flags)
        os.dup2(opened, fd)
        os.close(opened)
    for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if request["env"].get("PYTHONUNBUFFERED"):  # as `python -u`: stdout written through
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            raw = open(stream.fileno(), "wb", buffering=0, closefd=False)  # noqa: SIM115
            setattr(
                sys, name, io.TextIOWrapper(raw, stream.encoding, stream.errors, write_through=True)
            )
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(request["argv"][0])


def _preload() -> None:
    import importlib
    import pkgutil

    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        for module in pkgutil.walk_packages(path, package + "."):
            if not module.name.startswith(SKIPPED):
                importlib.import_module(module.name)
    for library in LIBRARIES:
        importlib.import_module(library)


def _run(script: str) -> int:
    """Run the console script as `python SCRIPT` would, up to its exit code: the exception
    it lets out printed, non-daemon threads joined, `atexit` functions run, stdio flushed.
    Not the rest of an interpreter's finalization (it would scan, and so copy, every page
    the child shares with the server); os._exit follows."""
    import atexit
    import runpy
    import threading

    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code = -signal.SIGINT  # Python ends so: killed by the SIGINT it did not handle
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code & 0xFF


if __name__ == "__main__":
    import gc

    from stack.telemetry import disable_wrapped_tool_telemetry

    disable_wrapped_tool_telemetry()
    _preload()
    gc.freeze()  # what the children inherit is never collected: no page copied to scan it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of pytest is pytest's to handle
    request = _serve(sys.argv[1])
    _become(request)
    del request
    code = _run(sys.argv[0])
    os._exit(code)
