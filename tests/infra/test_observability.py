"""The Pulumi program's Prometheus scraping of the serving namespace and its Grafana
dashboards, under Pulumi's mocks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlstack_infra.manifests import Endpoints, render
from mlstack_infra.spec import parse_spec

from tests.infra.conftest import RecordingMocks
from tests.infra.test_targets import declare, services_group, spec_for


def _groups(mocks: RecordingMocks, spec: object) -> dict[str, list[dict[str, object]]]:
    resources = declare(mocks, spec)
    return {group.name: group.inputs["objs"] for group in services_group(resources)}


def test_the_program_scrapes_the_serving_namespace_and_provisions_the_dashboards(
    mocks: RecordingMocks,
) -> None:
    groups = _groups(mocks, spec_for("aws", services={"prometheus": {}}))
    [scraping] = groups.values()  # applied with the other mlstack services
    [monitor] = [o for o in scraping if o["kind"] == "PodMonitor"]
    assert monitor["metadata"]["namespace"] == "mlstack-serving"
    assert monitor["spec"] == {
        "selector": {"matchLabels": {"app.kubernetes.io/managed-by": "mlstack"}},
        "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
    }
    dashboards = {
        o["metadata"]["name"]: o
        for o in scraping
        if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]
    }
    assert set(dashboards) == {
        "mlstack-dashboard-endpoints",
        "mlstack-dashboard-monitoring",
        "mlstack-dashboard-rollouts",
    }
    endpoints = dashboards["mlstack-dashboard-endpoints"]
    assert endpoints["metadata"]["namespace"] == "monitoring"
    assert endpoints["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(endpoints["data"]["mlstack-endpoints.json"])["uid"] == "mlstack-endpoints"


def test_prometheus_may_reach_the_endpoints_port_and_nothing_more() -> None:
    spec = spec_for("aws", services={"prometheus": {"namespace": "observability"}})
    [policy] = [
        o
        for o in render(spec, Endpoints("s3://b/mlflow", "db"))
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "only-the-gateway"
    ]
    scrape = {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}
    assert {
        "from": [{"namespaceSelector": scrape}],
        "ports": [{"port": 3000, "protocol": "TCP"}],
    } in policy["spec"]["ingress"]


@pytest.mark.parametrize("services", [{}, {"prometheus": None}], ids=["default", "null"])
def test_without_prometheus_nothing_is_scraped(
    mocks: RecordingMocks, services: dict[str, Any]
) -> None:
    """Off unless asked: a bare cluster has no PodMonitor CRD nor `monitoring` namespace."""
    [objects] = _groups(mocks, spec_for("aws", services=services)).values()
    assert not [o for o in objects if o["kind"] == "PodMonitor" or "dashboard" in str(o)]
    assert "monitoring" not in json.dumps([o for o in objects if o["kind"] == "NetworkPolicy"])


def test_a_bad_prometheus_namespace_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"services\.prometheus\.namespace"):
        parse_spec(
            {
                "target": "aws",
                "region": "us-east-1",
                "node_pools": [{"name": "system", "machine_type": "m6i.xlarge", "max_size": 3}],
                "services": {"prometheus": {"namespace": "Not_A_Namespace"}},
            }
        )


def test_monitoring_cronjobs_are_exported_by_monitor_serve_scraped_like_the_endpoints(
    mocks: RecordingMocks,
) -> None:
    """The CronJobs record their checks in the spine; one `mlstack monitor serve` Deployment
    reading the same spine exports them (no pushgateway), found by a PodMonitor and by
    `prometheus.io/*` annotations."""
    services = {"prometheus": {}, "monitoring": [{"model": "churn"}]}
    [objects] = _groups(mocks, spec_for("aws", services=services)).values()
    [job] = [o for o in objects if o["kind"] == "CronJob"]
    [exporter] = [
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlstack-monitor-exporter"
    ]
    assert exporter["metadata"]["namespace"] == job["metadata"]["namespace"] == "mlstack"
    pod = exporter["spec"]["template"]
    [container] = pod["spec"]["containers"]
    [cron] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["monitor", "serve", "--host", "0.0.0.0", "--port", "9410"]
    assert container["image"] == cron["image"]  # the same mlstack, the same spine
    assert container["env"] == cron["env"]
    assert container["volumeMounts"] == cron["volumeMounts"]
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9410",
        "prometheus.io/path": "/metrics",
    }
    [monitor] = [
        o
        for o in objects
        if o["kind"] == "PodMonitor" and o["metadata"]["name"] == "mlstack-monitor-exporter"
    ]
    assert monitor["metadata"]["namespace"] == "mlstack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s"}
    ]


def test_without_monitoring_jobs_no_exporter_runs(mocks: RecordingMocks) -> None:
    [objects] = _groups(mocks, spec_for("aws", services={"prometheus": {}})).values()
    assert "mlstack-monitor-exporter" not in json.dumps(objects)
