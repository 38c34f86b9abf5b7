"""A stack with MLflow, BentoML and Evidently in a temporary folder; the test recipe trained
and its version served on a real endpoint; a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.config.recipe_file import Recipe, load_recipe
from stack.contract.registry import ModelVersion
from stack.session import StackSession
from tests.adapters.bentoml.conftest import free_port

RECIPE = Path(__file__).parent / "recipe"
STACK = """
name: monitoring-test
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
server: {{adapter: bentoml, port: {port}, log_flush_seconds: 0.2}}
monitor: {{adapter: evidently}}
orchestrator: {{adapter: local}}
spine: {{url: "sqlite:///.mlstack/spine.db"}}
"""


@dataclass
class Receiver:
    """A webhook on 127.0.0.1 that keeps every JSON body it is sent."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Served:
    folder: Path
    recipe: Recipe
    version: ModelVersion
    url: str
    webhook: Receiver

    def session(self) -> StackSession:
        return StackSession.open(self.folder / "stack.yaml", base_dir=self.folder)

    def send(self, records: list[dict[str, float]], prefix: str) -> list[tuple[str, int]]:
        """One request per record, with our own request ids; (id, predicted class) each."""
        answers = []
        with httpx.Client(timeout=10) as client:
            for i, record in enumerate(records):
                request_id = f"{prefix}-{i}"
                response = client.post(
                    f"{self.url}/predict", json=record, headers={"x-request-id": request_id}
                )
                assert response.status_code == 200, response.text
                answers.append((request_id, int(response.json()["predictions"][0])))
        return answers


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/alerts", received)
    server.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, webhook: Receiver) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("monitoring")
    (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
    recipe = load_recipe(RECIPE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MONITOR_TEST_WEBHOOK", webhook.url)
        with StackSession.open(folder / "stack.yaml", recipe=recipe, base_dir=folder) as session:
            session.orchestrator.run(session)
            version = session.registry.versions("churn")[-1]
            endpoint = session.server.deploy(version, endpoint="churn")
        built = Served(folder, recipe, version, endpoint.url, webhook)
        yield built
        with built.session() as session:
            session.server.undeploy("churn")


def moment() -> datetime:
    return datetime.now(UTC)
