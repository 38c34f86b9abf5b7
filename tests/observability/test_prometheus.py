"""Debian's Prometheus scrapes a live endpoint (two BentoML workers) and sees every request
it answered, per version and role; the shipped rules load and a rule fires into Debian's
Alertmanager, which delivers it to a webhook receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.adapters.bentoml.conftest import Stack, champion_serving, row
from tests.support.prometheus import prometheus, wait_for

STACK = """
name: metrics-test
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
server: {{adapter: bentoml, port: {port}, workers: 2, log_flush_seconds: 0.2}}
spine: {{url: "sqlite:///.mlstack/spine.db"}}
"""
REQUESTS = 40


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    folder = tmp_path_factory.mktemp("metrics")
    with champion_serving(folder, STACK) as stack, stack.session() as session:
        (endpoint,) = session.server.endpoints()
        with httpx.Client(timeout=10) as client:
            for _ in range(REQUESTS):
                client.post(f"{endpoint.url}/predict", json=row()).raise_for_status()
        yield stack, endpoint.url


def _samples(text: str, name: str) -> dict[str, float]:
    """`name`'s samples in Prometheus' text format: labels text -> value."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            found[labels.removeprefix(name)] = float(value)
    return found


def test_metrics_count_every_request_across_workers(serving: tuple[Stack, str]) -> None:
    stack, url = serving
    champion = stack.versions.champion.ref
    label = f'{{code="200",endpoint="churn",role="champion",version="{champion}"}}'

    def all_counted() -> httpx.Response | None:  # each worker flushes its tallies each second
        response = httpx.get(f"{url}/metrics", timeout=10)
        requests = _samples(response.text, "mlstack_endpoint_requests_total")
        return response if requests == {label: REQUESTS} else None

    response = wait_for(f"{REQUESTS} requests counted", all_counted, 10)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    count = _samples(response.text, "mlstack_endpoint_request_duration_seconds_count")
    assert sum(count.values()) == REQUESTS
    assert _samples(response.text, "mlstack_endpoint_in_flight_requests") == {
        '{endpoint="churn"}': 0.0
    }
    assert _samples(response.text, "mlstack_endpoint_routing_revision") == {
        '{endpoint="churn"}': 1.0
    }
    (load,) = _samples(response.text, "mlstack_endpoint_model_load_seconds").values()
    assert load > 0
    dropped = _samples(response.text, "mlstack_endpoint_prediction_log_dropped_rows_total")
    assert dropped == {'{endpoint="churn"}': 0.0}


def test_prometheus_scrapes_the_endpoint(serving: tuple[Stack, str], tmp_path: Path) -> None:
    _, url = serving
    target = url.removeprefix("http://")
    with prometheus(tmp_path / "prometheus", [target]) as server:
        result = wait_for(
            "the endpoint's requests in Prometheus",
            lambda: server.query('sum(mlstack_endpoint_requests_total{role="champion"})'),
            60,
            server.log,
        )
        assert float(result[0]["value"][1]) == REQUESTS
        (up,) = server.query(f'up{{instance="{target}"}}')
        assert up["value"][1] == "1"
