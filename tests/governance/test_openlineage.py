"""Lineage exported as OpenLineage events, to a file and to a real HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from stack.governance.openlineage import export
from stack.spine.lineage import LineageEdge, NodeKind, NodeRef

DATA = NodeRef(NodeKind.DATA_SNAPSHOT, "sha256:abc")
VIEW = NodeRef(NodeKind.FEATURE_VIEW, "customer_stats")
RUN = NodeRef(NodeKind.RUN, "8479f45359644c1096f904c68e0a56a8")
MODEL = NodeRef(NodeKind.MODEL_VERSION, "churn@1")
ENDPOINT = NodeRef(NodeKind.ENDPOINT_REVISION, "churn-api#1")
EDGES = [
    LineageEdge(DATA, VIEW, "materialized"),
    LineageEdge(VIEW, RUN, "fed"),
    LineageEdge(DATA, RUN, "trained"),
    LineageEdge(RUN, MODEL, "produced"),
    LineageEdge(MODEL, ENDPOINT, "deployed"),
]


def by_job(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["job"]["name"]: e for e in events}


def test_events_follow_runs_and_dataset_edges(tmp_path: Path) -> None:
    file = tmp_path / "ol.jsonl"
    assert export(EDGES, namespace="team-a", file=file) == 3
    events = by_job([json.loads(line) for line in file.read_text().splitlines()])
    training = events[str(RUN)]
    assert training["eventType"] == "COMPLETE"
    assert training["run"]["runId"] == "8479f453-5964-4c10-96f9-04c68e0a56a8"
    assert sorted(d["name"] for d in training["inputs"]) == [str(DATA), str(VIEW)]
    assert [d["name"] for d in training["outputs"]] == [str(MODEL)]
    assert {d["namespace"] for d in training["inputs"]} == {"team-a"}
    deploy = events[f"deployed:{ENDPOINT}"]
    assert ([d["name"] for d in deploy["inputs"]], [d["name"] for d in deploy["outputs"]]) == (
        [str(MODEL)],
        [str(ENDPOINT)],
    )
    assert f"materialized:{VIEW}" in events


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str, dict[str, Any]]]]]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    finally:
        server.shutdown()


def test_events_reach_an_http_endpoint_with_the_api_key(
    receiver: tuple[str, list[tuple[str, str, dict[str, Any]]]],
) -> None:
    url, received = receiver
    assert export(EDGES, namespace="team-a", url=url, api_key="k-123") == 3
    assert {path for path, _, _ in received} == {"/api/v1/lineage"}
    assert {auth for _, auth, _ in received} == {"Bearer k-123"}
    assert str(RUN) in {event["job"]["name"] for _, _, event in received}
