"""The cluster path of an endpoint, as Kubernetes objects.

Each version runs as its own Deployment (so a crashing challenger never takes the champion's
pods with it), behind its own Service, with a HorizontalPodAutoscaler and a
PodDisruptionBudget. One Gateway API HTTPRoute carries the traffic split: backend weights for
a canary or an A/B, a RequestMirror filter for a shadow (mirrored answers are discarded by
the gateway, as the local shadow's are). GPU versions request `nvidia.com/gpu`, tolerate the
GPU pools' taint and select their nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stack.contract.registry import ModelVersion
from stack.contract.serving import TrafficSplit
from stack_bentoml.config import KubernetesTarget

PORT = 3000
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def dns_name(text: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
    return cleaned[:63].rstrip("-")


def manifests(
    target: KubernetesTarget,
    endpoint: str,
    versions: Sequence[ModelVersion],
    split: TrafficSplit,
) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for version in versions:
        objects.extend(_version_objects(target, endpoint, version))
    objects.append(_route(target, endpoint, versions, split))
    return objects


def _labels(endpoint: str, version: ModelVersion) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": dns_name(endpoint),
        "app.kubernetes.io/managed-by": "mlstack",
        "mlstack.io/model": dns_name(version.model),
        "mlstack.io/version": str(version.version),
    }


def _name(endpoint: str, version: ModelVersion) -> str:
    return dns_name(f"{endpoint}-v{version.version}")


def _version_objects(
    target: KubernetesTarget, endpoint: str, version: ModelVersion
) -> list[dict[str, Any]]:
    name = _name(endpoint, version)
    labels = _labels(endpoint, version)
    metadata = {"name": name, "namespace": target.namespace, "labels": labels}
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": target.cpu, "memory": target.memory},
        "limits": {"memory": target.memory},
    }
    tolerations = [t.model_dump(exclude_none=True) for t in target.tolerations]
    node_selector = dict(target.node_selector)
    if target.gpus:
        resources["requests"][target.gpu_resource] = str(target.gpus)
        resources["limits"][target.gpu_resource] = str(target.gpus)
        if not any(t["key"] == GPU_TOLERATION["key"] for t in tolerations):
            tolerations.append(dict(GPU_TOLERATION))
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5}
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": target.termination_grace_seconds,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1034, "fsGroup": 1034},
        "containers": [
            {
                "name": "endpoint",
                "image": target.image.format(
                    model=dns_name(version.model), version=version.version
                ),
                "args": [
                    "serve",
                    "stack_bentoml.service:MlstackEndpoint",
                    "--host",
                    "0.0.0.0",
                    "--port",
                    str(PORT),
                ],
                "env": [
                    {"name": "MLSTACK_ENDPOINT_SPEC", "value": "/etc/mlstack/endpoint.json"},
                    {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
                    {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
                ],
                "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                "resources": resources,
                "readinessProbe": probe,
                "livenessProbe": {**probe, "httpGet": {"path": "/livez", "port": "http"}},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    selector = {"matchLabels": labels}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": target.min_replicas,
                "selector": selector,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata,
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": target.min_replicas,
                "maxReplicas": max(target.max_replicas, target.min_replicas),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": target.target_cpu_utilization,
                            },
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata,
            "spec": {"minAvailable": 1, "selector": selector},
        },
    ]


def _route(
    target: KubernetesTarget,
    endpoint: str,
    versions: Sequence[ModelVersion],
    split: TrafficSplit,
) -> dict[str, Any]:
    by_ref = {v.ref: v for v in versions}
    backends = [
        {
            "name": _name(endpoint, by_ref[ref]),
            "port": PORT,
            "weight": round(weight * 100),
        }
        for ref, weight in split.weights.items()
    ]
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": backends,
    }
    if split.shadows:
        rule["filters"] = [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"name": _name(endpoint, by_ref[ref]), "port": PORT}
                },
            }
            for ref in split.shadows
        ]
    parent: dict[str, Any] = {"name": target.gateway}
    if target.gateway_namespace:
        parent["namespace"] = target.gateway_namespace
    spec: dict[str, Any] = {"parentRefs": [parent], "rules": [rule]}
    if target.hostname:
        spec["hostnames"] = [target.hostname]
    annotations = {}
    if split.sticky:
        # Gateway API has no sticky weights in its standard channel; the endpoint assigns
        # A/B arms by the subject header itself, so the route only states the shares.
        annotations["mlstack.io/ab-subject-header"] = "x-mlstack-subject"
    metadata: dict[str, Any] = {
        "name": dns_name(endpoint),
        "namespace": target.namespace,
        "labels": {
            "app.kubernetes.io/name": dns_name(endpoint),
            "app.kubernetes.io/managed-by": "mlstack",
        },
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": spec,
    }
