"""Prometheus scraping of the serving namespace and the Grafana dashboards, as manifests:
a PodMonitor (the Prometheus Operator's, as kube-prometheus-stack installs it) for every
mlstack endpoint pod's `/metrics`; with monitoring CronJobs, `mlstack monitor serve` as a
Deployment exporting their latest checks from the spine (the jobs need no pushgateway),
scraped the same way (a PodMonitor, and `prometheus.io/*` annotations for annotation-based
scrapers); and one ConfigMap per dashboard of `stack/observability/dashboards/` labelled for
Grafana's dashboard sidecar. Kept apart from
`manifests.render` (built-in kinds only, validated offline against Kubernetes' schemas):
these are custom resources and data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack_infra.manifests import (
    NAMESPACE,
    _database_env,
    _deployment,
    from_namespaces,
    network_policy,
)
from mlstack_infra.spec import InfraSpec

SERVING = "mlstack-serving"
EXPORTER = "mlstack-monitor-exporter"
EXPORTER_PORT = 9410  # `mlstack monitor serve`'s default
#: the repository's dashboards (the Pulumi program runs from a checkout)
DASHBOARDS = Path(__file__).resolve().parents[3] / "stack" / "observability" / "dashboards"
ENDPOINT_PODS = {"app.kubernetes.io/managed-by": "mlstack"}  # stack_bentoml.kubernetes.MANAGED

Manifest = dict[str, Any]


def manifests(spec: InfraSpec) -> list[Manifest]:
    scraping = spec.services.prometheus
    if scraping is None or not spec.services.serving:
        return []
    objects: list[Manifest] = []
    if scraping.pod_monitor:
        objects.append(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": {
                    "name": "mlstack-endpoints",
                    "namespace": SERVING,
                    "labels": {"app.kubernetes.io/part-of": "mlstack"},
                },
                "spec": {
                    "selector": {"matchLabels": dict(ENDPOINT_PODS)},
                    "podMetricsEndpoints": [
                        {"port": "http", "path": "/metrics", "interval": "30s"}
                    ],
                },
            }
        )
    if spec.services.monitoring:
        objects += _exporter(spec, scraping.pod_monitor)
    if scraping.grafana_dashboards:
        for path in sorted(DASHBOARDS.glob("*.json")):
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": f"mlstack-dashboard-{path.stem}",
                        "namespace": scraping.namespace,
                        "labels": {
                            "grafana_dashboard": "1",
                            "app.kubernetes.io/part-of": "mlstack",
                        },
                    },
                    "data": {f"mlstack-{path.stem}.json": path.read_text()},
                }
            )
    return objects


def _exporter(spec: InfraSpec, pod_monitor: bool) -> list[Manifest]:
    """`mlstack monitor serve` in the monitoring CronJobs' namespace, reading the same spine
    (the stack file's secret, the database credentials), and what scrapes it."""
    container: Manifest = {
        "name": "exporter",
        "image": spec.image,
        "args": ["monitor", "serve", "--host", "0.0.0.0", "--port", str(EXPORTER_PORT)],
        "ports": [{"name": "http", "containerPort": EXPORTER_PORT}],
        "env": [
            *_database_env(),
            {"name": "MLSTACK_STACK", "value": "/etc/mlstack/stack.yaml"},
        ],
        "volumeMounts": [{"name": "stack", "mountPath": "/etc/mlstack", "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
    }
    deployment = _deployment(EXPORTER, container)
    template = deployment["spec"]["template"]
    template["metadata"]["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(EXPORTER_PORT),
        "prometheus.io/path": "/metrics",
    }
    template["spec"]["volumes"] = [{"name": "stack", "secret": {"secretName": "mlstack-stack"}}]
    scraper = spec.services.prometheus.namespace if spec.services.prometheus else NAMESPACE
    objects = [
        deployment,
        network_policy(
            f"allow-{EXPORTER}",
            NAMESPACE,
            {"app.kubernetes.io/name": EXPORTER},
            [from_namespaces([scraper], EXPORTER_PORT)],
        ),
    ]
    if pod_monitor:
        objects.append(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": {
                    "name": EXPORTER,
                    "namespace": NAMESPACE,
                    "labels": {"app.kubernetes.io/part-of": "mlstack"},
                },
                "spec": {
                    "selector": {"matchLabels": {"app.kubernetes.io/name": EXPORTER}},
                    "podMetricsEndpoints": [
                        {"port": "http", "path": "/metrics", "interval": "30s"}
                    ],
                },
            }
        )
    return objects
