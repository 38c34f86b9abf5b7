"""Running the installed `mlstack` command as a user does, in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MLSTACK = Path(sys.executable).parent / "mlstack"
FORKSERVER = Path(__file__).with_name("forkserver.py")
# the environment pytest started with (before any test's monkeypatch): the fork server's
ENVIRON = dict(os.environ)

Cli = Callable[..., subprocess.CompletedProcess[str]]


def cli_in(folder: Path, *, fresh: bool = False) -> Cli:
    """`mlstack ARGS` in `folder`, in a process of its own forked from the fork server
    (tests/support/forkserver.py), or a new interpreter when `fresh`."""

    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = mlstack(*args, cwd=folder, fresh=fresh)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    return run


def mlstack(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    fresh: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([mlstack, *args], cwd=cwd, env=env, capture_output=True, text=True,
    timeout=timeout)`, the process forked from the fork server unless `fresh` (or
    MLSTACK_TEST_FRESH_CLI=1, to tell whether a failure is the fork server's); `env` defaults
    to this process's environment at the call, as subprocess's does."""
    if fresh or os.environ.get("MLSTACK_TEST_FRESH_CLI") == "1":
        return subprocess.run(
            [str(MLSTACK), *args],
            cwd=cwd,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return _SERVER.run(
        [str(MLSTACK), *args], cwd, dict(os.environ if env is None else env), timeout
    )


class _ForkServer:
    """The client of this pytest process's fork server, started on first use."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._socket = ""
        self._lock = threading.Lock()

    def _started(self) -> str:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                # a Unix socket's path holds at most 107 bytes: a long TMPDIR falls back on /tmp
                short = len(tempfile.gettempdir()) < 64 or not os.path.isdir("/tmp")
                folder = tempfile.mkdtemp(prefix="mlstack-fs-", dir=None if short else "/tmp")
                self._socket = os.path.join(folder, "socket")
                with open(os.path.join(folder, "server.log"), "wb") as log:
                    self._process = subprocess.Popen(
                        [sys.executable, str(FORKSERVER), self._socket],
                        cwd=folder,
                        env=ENVIRON,
                        stdin=subprocess.PIPE,  # closed when this process ends: the server ends
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                deadline = time.monotonic() + 300
                while not os.path.exists(self._socket):
                    if self._process.poll() is not None:
                        log_text = Path(folder, "server.log").read_text(errors="replace")
                        raise RuntimeError(f"the fork server ended at start:\n{log_text}")
                    assert time.monotonic() < deadline, "the fork server never listened"
                    time.sleep(0.05)
            return self._socket

    def run(
        self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        path = self._started()
        with tempfile.TemporaryDirectory(prefix="mlstack-call-") as scratch:
            out, err = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
            for name in (out, err):
                open(name, "wb").close()
            request = {"argv": argv, "cwd": str(Path(cwd).resolve()), "env": env}
            request |= {"stdout": out, "stderr": err}
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(path)
                connection.sendall(json.dumps(request).encode() + b"\n")
                messages = _Messages(connection)
                pid = messages.next(None)["pid"]
                code: int | None = None
                try:
                    code = messages.next(timeout)["exit"]
                except TimeoutError:
                    pass
                finally:
                    if code is None:  # timed out, or this test was interrupted
                        os.kill(pid, signal.SIGKILL)
                        messages.next(None)
            stdout = Path(out).read_text(errors="replace")
            stderr = Path(err).read_text(errors="replace")
        if code is None:
            raise subprocess.TimeoutExpired(argv, timeout, output=stdout, stderr=stderr)
        return subprocess.CompletedProcess(argv, code, stdout, stderr)


class _Messages:
    """The JSON lines of one connection to the fork server."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._buffer = b""

    def next(self, timeout: float | None) -> dict[str, int]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            self._connection.settimeout(left)
            chunk = self._connection.recv(65536)
            if not chunk:
                raise RuntimeError("the fork server ended with a command running")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)  # type: ignore[no-any-return]


_SERVER = _ForkServer()


def run_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`mlstack ARGS` through its entry point in this process, in the working directory:
    the exit code, stdout and stderr as a user sees them, in milliseconds rather than the
    second a subprocess takes to start. An exception the entry point lets out is returned as
    the traceback Python would print, with exit code 1."""
    import contextlib
    import io
    import signal
    import traceback
    import warnings

    from stack.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    show, sigint = warnings.showwarning, signal.getsignal(signal.SIGINT)
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            # Click returns ctx.exit(n)'s code in this mode; the console script exits with it
            returned = main(list(args))
            code = returned if isinstance(returned, int) else 0
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        err.write(traceback.format_exc())
        code = 1
    finally:
        warnings.showwarning = show
        signal.signal(signal.SIGINT, sigint)
    returncode = code if isinstance(code, int) else 1
    return subprocess.CompletedProcess(
        ["mlstack", *args], returncode, out.getvalue(), err.getvalue()
    )
