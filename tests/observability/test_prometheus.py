"""Debian's Prometheus scrapes a live endpoint (two BentoML workers) and sees every request
it answered, per version and role; the shipped rules load and a rule fires into Debian's
Alertmanager, which delivers it to a webhook receiver on 127.0.0.1. The graph page's
screenshot is docs/observability.md's (`MLSTACK_UPDATE_SCREENSHOTS=1` writes it there)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapters.bentoml.conftest import Stack, champion_serving, row
from tests.adapters.bentoml.models import Registered
from tests.observability.test_dashboards import DASHBOARDS, queries
from tests.support.prometheus import (
    alertmanager,
    prometheus,
    shipped_rules,
    wait_for,
    webhook_receiver,
)

STACK = """
name: metrics-test
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
server: {{adapter: bentoml, port: {port}, workers: 2, log_flush_seconds: 0.2}}
spine: {{url: "sqlite:///.mlstack/spine.db"}}
"""
REQUESTS = 40
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images" / "observability"
#: what Grafana puts in a query before Prometheus sees it
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$endpoint": ".*",
    "$model": ".*",
}


@pytest.fixture(scope="module")
def serving(
    tmp_path_factory: pytest.TempPathFactory, registered_template: Registered
) -> Iterator[tuple[Stack, str]]:
    folder = tmp_path_factory.mktemp("metrics")
    with champion_serving(folder, STACK, registered_template) as stack, stack.session() as session:
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
        answered = {k: v for k, v in requests.items() if 'code="200"' in k}
        return response if answered == {label: REQUESTS} else None

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


def test_refused_requests_are_counted_by_status_and_reason(serving: tuple[Stack, str]) -> None:
    """Bad payloads are answered 4xx and counted: under the version a probe pinned, else
    with the version empty; and by reason."""
    stack, url = serving
    champion = stack.versions.champion.ref
    probe = {"x-mlstack-traffic": "probe", "x-mlstack-version": champion}
    with httpx.Client(timeout=10) as client:
        refused = [
            client.post(f"{url}/predict", content=b""),  # 400 empty_body
            client.post(f"{url}/predict", json={"no_such_field": "x"}),  # 422 invalid_payload
            client.post(f"{url}/predict", json={"no_such_field": "x"}, headers=probe),
            client.post(f"{url}/predict", content=b"a=1", headers={"content-type": "text/plain"}),
            client.post(f"{url}/predict", json=row(), headers={"x-mlstack-traffic": "nope"}),
        ]
    assert [r.status_code for r in refused] == [400, 422, 422, 415, 400]
    expected = {
        '{code="400",endpoint="churn",reason="empty_body"}': 1.0,
        '{code="400",endpoint="churn",reason="bad_header"}': 1.0,
        '{code="415",endpoint="churn",reason="unsupported_media_type"}': 1.0,
        '{code="422",endpoint="churn",reason="invalid_payload"}': 2.0,
    }

    def counted() -> str | None:  # refusals are written at once; any worker may answer
        text = httpx.get(f"{url}/metrics", timeout=10).text
        found = _samples(text, "mlstack_endpoint_rejected_requests_total")
        return text if found == expected else None

    text = wait_for("the refusals counted", counted, 10)
    requests = _samples(text, "mlstack_endpoint_requests_total")
    assert requests['{code="400",endpoint="churn",role="",version=""}'] == 2
    assert requests['{code="415",endpoint="churn",role="",version=""}'] == 1
    assert requests['{code="422",endpoint="churn",role="",version=""}'] == 1
    pinned = f'{{code="422",endpoint="churn",role="champion",version="{champion}"}}'
    assert requests[pinned] == 1


def test_prometheus_scrapes_the_endpoint(serving: tuple[Stack, str], tmp_path: Path) -> None:
    _, url = serving
    target = url.removeprefix("http://")
    with prometheus(tmp_path / "prometheus", [target]) as server:
        answered_ok = 'sum(mlstack_endpoint_requests_total{role="champion",code="200"})'
        result = wait_for(
            "the endpoint's requests in Prometheus",
            lambda: server.query(answered_ok),
            60,
            server.log,
        )
        assert float(result[0]["value"][1]) == REQUESTS
        (up,) = server.query(f'up{{instance="{target}"}}')
        assert up["value"][1] == "1"
        rates = "rate(mlstack_endpoint_requests_total[1m])"  # two scrapes: rate() has data
        wait_for("two scrapes", lambda: server.query(rates), 60, server.log)
        answered = 0
        for path in DASHBOARDS:  # Prometheus parses every panel's query (400 if it cannot)
            for title, expr in queries(json.loads(path.read_text())):
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                # Grafana's label_values(metric, label): the label's values in PromQL
                expr = re.sub(r"label_values\((\w+), (\w+)\)", r"count by (\2) (\1)", expr)
                answer = server.get("/api/v1/query", query=expr)
                assert answer["status"] == "success", (path.name, title)
                answered += bool(answer["data"]["result"]) and "endpoint" in path.name
        assert answered >= 5  # the endpoints dashboard shows this endpoint's data


def test_a_failing_canary_fires_a_shipped_rule_into_alertmanager(
    serving: tuple[Stack, str], tmp_path: Path
) -> None:
    from stack.contract.serving import TrafficSplit

    stack, url = serving
    champion, quirky = stack.versions.champion.ref, stack.versions.quirky.ref
    with stack.session() as session:
        session.server.add_version(stack.versions.quirky, endpoint="churn")
        session.server.route("churn", TrafficSplit({champion: 0.5, quirky: 0.5}))
    rules = shipped_rules(tmp_path / "rules")
    with (
        webhook_receiver() as receiver,
        alertmanager(tmp_path / "alertmanager", receiver.url) as manager,
        prometheus(
            tmp_path / "prometheus",
            [url.removeprefix("http://")],
            rules=[rules],
            alertmanager=manager.url.removeprefix("http://"),
        ) as server,
    ):
        loaded = server.get("/api/v1/rules")["data"]["groups"]
        assert sum(len(group["rules"]) for group in loaded) == 9
        assert all(rule["health"] != "err" for g in loaded for rule in g["rules"])
        crashing = row(tenure=1000)  # the quirky version raises on it; the champion answers
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 8  # over several scrapes: rate() sees it rise
            while time.monotonic() < deadline:
                answer = client.post(f"{url}/predict", json=crashing)
                assert answer.status_code == 200
                assert answer.headers["x-model-version"] == champion
                time.sleep(0.05)

        def delivered() -> dict[str, Any] | None:
            for body in receiver.bodies:
                for alert in body["alerts"]:
                    if alert["labels"]["alertname"] == "MlstackVersionErrors":
                        return dict(alert)
            return None

        alert = wait_for("MlstackVersionErrors at the webhook", delivered, 90, server.log)
    assert alert["status"] == "firing"
    assert alert["labels"]["version"] == quirky
    assert alert["labels"]["role"] == "canary"
    assert alert["labels"]["severity"] == "page"
    assert "fails" in alert["annotations"]["summary"]
    text = httpx.get(f"{url}/metrics", timeout=10).text
    assert _samples(text, "mlstack_endpoint_version_errors_total")
    fallback = f'{{code="200",endpoint="churn",role="fallback",version="{champion}"}}'
    assert _samples(text, "mlstack_endpoint_requests_total")[fallback] > 0


def test_the_prometheus_graph_page_plots_the_endpoints_requests(
    serving: tuple[Stack, str], tmp_path: Path
) -> None:
    from urllib.parse import quote

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from tests.support.chromium import chromedriver, chromium

    stack, url = serving
    expr = 'sum by (version, role) (rate(mlstack_endpoint_requests_total{code="200"}[30s]))'
    with prometheus(tmp_path / "prometheus", [url.removeprefix("http://")]) as server:
        wait_for("a rate to plot", lambda: server.query(expr), 60, server.log)
        with httpx.Client(timeout=10) as client:  # traffic while the graph's range fills
            for burst in range(12):  # ~10 s of changing traffic: a line with a shape
                for _ in range(1 + burst % 4 * 3):
                    client.post(f"{url}/predict", json=row()).raise_for_status()
                time.sleep(0.8)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium()
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            options.add_argument(flag)
        options.add_argument("--window-size=1280,1000")
        browser = webdriver.Chrome(options=options, service=Service(chromedriver()))
        try:
            browser.get(f"{server.url}/graph?g0.expr={quote(expr)}&g0.tab=0&g0.range_input=1m")

            def legend() -> str:
                items = browser.find_elements(By.CSS_SELECTOR, ".legend .line .label")
                return " ".join(item.text for item in items)

            shown = wait_for("the graph's legend", legend, 60, server.log)
            assert stack.versions.champion.ref in shown and "champion" in shown
            browser.save_screenshot(str(tmp_path / "prometheus-graph.png"))
            if os.environ.get("MLSTACK_UPDATE_SCREENSHOTS") == "1":
                DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(DOCS_IMAGES / "prometheus-graph.png"))
        finally:
            browser.quit()
