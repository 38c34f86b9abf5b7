"""Running the installed `mlstack` command as a user does, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MLSTACK = Path(sys.executable).parent / "mlstack"

Cli = Callable[..., subprocess.CompletedProcess[str]]


def cli_in(folder: Path) -> Cli:
    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(MLSTACK), *args], cwd=folder, capture_output=True, text=True, timeout=300
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    return run


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
