"""A real `mlflow server` on 127.0.0.1 for the tests: PostgreSQL backend, artifact proxying."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.ports import free_port


class MlflowServer:
    def __init__(
        self,
        backend_uri: str,
        artifacts: Path,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.backend_uri = backend_uri
        self.extra_args = extra_args
        self.artifacts = artifacts
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = artifacts.parent / f"mlflow-server-{self.port}.log"

    def start(self, timeout: float = 180) -> None:
        mlflow = Path(sys.executable).parent / "mlflow"
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        env["PATH"] = f"{mlflow.parent}{os.pathsep}{env.get('PATH', '')}"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(mlflow),
                    "server",
                    "--backend-store-uri",
                    self.backend_uri,
                    "--serve-artifacts",
                    "--artifacts-destination",
                    self.artifacts.as_uri(),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            if self.healthy():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy in {timeout}s: {self.log}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def freeze(self) -> None:
        """SIGSTOP the server's processes: it accepts connections and never answers (hangs)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()  # a stopped process would not act on SIGTERM
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 15)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=30)
        self.process = None
        deadline = time.monotonic() + 30
        while self.healthy() and time.monotonic() < deadline:
            time.sleep(0.2)
