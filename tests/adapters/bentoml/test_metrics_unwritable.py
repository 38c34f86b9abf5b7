"""Metrics are optional: an endpoint whose metrics folder cannot be written serves anyway,
with metrics off in the workers that cannot write, said once in the server log, and
`/metrics` answering 503 naming the folder (tests run as root, where a folder's mode does
not stop writes: the folder is made a regular file instead)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import httpx

from stack_bentoml.config import BentoConfig
from stack_bentoml.server import BentoServer
from stack_bentoml.supervision import fresh_metrics_dir
from tests.adapters.bentoml.conftest import Stack, free_port, row
from tests.adapters.bentoml.test_log_on_kill import ready, until


def _replaced_by_a_file(folder: os.PathLike[str]) -> None:
    shutil.rmtree(folder)
    with open(folder, "w") as file:
        file.write("not a folder\n")


def test_a_metrics_folder_that_cannot_be_written_leaves_serving_up(stack: Stack) -> None:
    with stack.session() as session:
        context = session.adapter_context()
    server = BentoServer(BentoConfig(port=free_port()), context)
    endpoint = server.deploy(stack.versions.champion, endpoint="nometrics")
    folder = server.supervisor.root / "nometrics"
    metrics = folder / "metrics"
    try:
        # a worker started while the folder cannot take its files: BentoML's replacement
        worker = int(httpx.get(f"{endpoint.url}/endpoint").json()["pid"])
        _replaced_by_a_file(metrics)
        os.kill(worker, signal.SIGKILL)
        until(lambda: ready(endpoint.url), "a new worker")
        answer = httpx.post(f"{endpoint.url}/predict", json=row(), timeout=30)
        assert answer.status_code == 200, answer.text
        assert int(httpx.get(f"{endpoint.url}/endpoint").json()["pid"]) != worker
        scraped = httpx.get(f"{endpoint.url}/metrics", timeout=30)
        assert scraped.status_code == 503
        assert str(metrics) in scraped.json()["error"]
        refused = httpx.post(f"{endpoint.url}/predict", content=b"{", timeout=30)
        assert 400 <= refused.status_code < 500  # counted nowhere, answered all the same
        said = f"metrics off in this worker: cannot write its metric files in {metrics}"
        assert (folder / "server.log").read_text().count(said) == 1

    finally:
        if "nometrics" in [e.name for e in server.endpoints()]:
            server.undeploy("nometrics")


def test_a_fresh_start_names_a_metrics_folder_it_cannot_make(tmp_path: Path) -> None:
    (tmp_path / "metrics").write_text("not a folder\n")
    assert fresh_metrics_dir(tmp_path) == (tmp_path / "metrics").resolve()  # no raise
