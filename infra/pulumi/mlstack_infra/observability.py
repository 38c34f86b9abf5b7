"""Prometheus scraping of the serving namespace and the Grafana dashboards, as manifests:
a PodMonitor (the Prometheus Operator's, as kube-prometheus-stack installs it) for every
mlstack endpoint pod's `/metrics`, and one ConfigMap per dashboard of
`stack/observability/dashboards/` labelled for Grafana's dashboard sidecar. Kept apart from
`manifests.render` (built-in kinds only, validated offline against Kubernetes' schemas):
these are custom resources and data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack_infra.spec import InfraSpec

SERVING = "mlstack-serving"
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
