"""The cluster path of an endpoint, as Kubernetes objects.

Each version runs as its own Deployment (so a crashing challenger never takes the champion's
pods with it), behind its own Service, with a HorizontalPodAutoscaler (which owns the
replica count: the Deployment states none, so an apply never resets it) and a
PodDisruptionBudget; one NetworkPolicy lets only the gateway's proxies (their namespace,
`proxy_namespace`: Envoy Gateway runs them in its own, not beside the Gateway) and the
serving namespace reach the endpoint's pods. One Gateway API HTTPRoute, attached to the
Gateway `gateway` in `gateway_namespace` (the serving namespace unless set), carries the
traffic split:
backend weights for a canary or an A/B, a RequestMirror filter for a shadow (mirrored
answers are discarded by the gateway, as the local shadow's are), and in its annotations
the split and revision mlstack routed (the cluster is the state: `mlstack rollout status`
from another machine reads them back). GPU versions request `nvidia.com/gpu`, tolerate the
GPU pools' taint (`nvidia.com/gpu`, as infra/pulumi puts on them) and their other taints
(`gpu_tolerations`: the stack file infra writes lists them, Azure spot's among them), and
select their nodes (`gpu_node_selector`, the pools' label, unless `node_selector` says
otherwise); pods without GPUs tolerate none of that, so they never take a GPU node's room.
Which endpoints get GPUs is per endpoint (`endpoints: {NAME: {gpus: 1}}`, which may also
size its CPU, memory and replicas). Every toleration is written in the pod, none left to an
admission plugin managed clusters lack (PodTolerationRestriction). Pods run at
`priority_class` when set (the stack file infra writes names the class it creates).
Each endpoint's Envoy Gateway BackendTrafficPolicy retries a request whose pod died
unanswered (`retries`). Secrets reach the pods by reference (secretKeyRef), never by value."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stack.contract.registry import ModelSelector, ModelVersion
from stack.contract.serving import TrafficSplit
from stack_bentoml.config import KubernetesTarget

PORT = 3000
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
MANAGED = {"app.kubernetes.io/managed-by": "mlstack"}
#: Annotations of the HTTPRoute: the state of the endpoint, as mlstack routed it.
ENDPOINT_KEY = "mlstack.io/endpoint"
REVISION_KEY = "mlstack.io/revision"
SPLIT_KEY = "mlstack.io/split"
REF_KEY = "mlstack.io/ref"  # on each version's Deployment


def dns_name(text: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
    return cleaned[:63].rstrip("-")


def manifests(
    target: KubernetesTarget,
    endpoint: str,
    versions: Sequence[ModelVersion],
    split: TrafficSplit,
    revision: int = 1,
) -> list[dict[str, Any]]:
    """Every object serving `versions` on `endpoint` with `split` (as revision `revision`)."""
    objects: list[dict[str, Any]] = []
    for version in versions:
        objects.extend(version_objects(target, endpoint, version.ref))
    objects.append(network_policy(target, endpoint))
    policy = retry_policy(target, endpoint)
    if policy is not None:
        objects.append(policy)
    objects.append(route(target, endpoint, split, revision))
    return objects


def gateway_namespace(target: KubernetesTarget) -> str:
    """The namespace of the Gateway the route attaches to."""
    return target.gateway_namespace or target.namespace


def proxy_namespace(target: KubernetesTarget) -> str:
    """The namespace of the pods that carry the gateway's traffic to the endpoints."""
    return target.proxy_namespace or gateway_namespace(target)


def network_policy(target: KubernetesTarget, endpoint: str) -> dict[str, Any]:
    """Only the gateway's proxies' namespace and the serving namespace reach the endpoint's
    port."""
    namespaces = dict.fromkeys([proxy_namespace(target), target.namespace])
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": dns_name(endpoint),
            "namespace": target.namespace,
            "labels": {"app.kubernetes.io/name": dns_name(endpoint), **MANAGED},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": dns_name(endpoint)}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": namespace}
                            }
                        }
                        for namespace in namespaces
                    ],
                    "ports": [{"protocol": "TCP", "port": PORT}],
                }
            ],
        },
    }


#: Envoy Gateway's policy of how its proxies talk to a route's backends (its retries here).
RETRY_POLICY = ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy")


def retry_policy(target: KubernetesTarget, endpoint: str) -> dict[str, Any] | None:
    """The Envoy Gateway BackendTrafficPolicy that sends a request again, `target.retries`
    times at most, when the pod that had it answered nothing: its connection reset or
    refused (a pod killed by kill -9, the OOM killer or a lost node: without it, every
    request in flight there is lost). Not on an answer, whatever its status: a model's 500
    is its verdict, not a transport fault. None when `retries` is 0.

    Source: Envoy Gateway's Retry API (api/v1alpha1/retry_types.go; triggers are Envoy's
    `x-envoy-retry-on` conditions), attached to the endpoint's HTTPRoute by `targetRefs`."""
    if target.retries == 0:
        return None
    api_version, kind = RETRY_POLICY
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": dns_name(endpoint),
            "namespace": target.namespace,
            "labels": {"app.kubernetes.io/name": dns_name(endpoint), **MANAGED},
        },
        "spec": {
            "targetRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "HTTPRoute",
                    "name": dns_name(endpoint),
                }
            ],
            "retry": {
                "numRetries": target.retries,
                "retryOn": {"triggers": ["connect-failure", "refused-stream", "reset"]},
                "perRetry": {"backOff": {"baseInterval": "25ms", "maxInterval": "250ms"}},
            },
        },
    }


def _parts(ref: str) -> tuple[str, int]:
    selector = ModelSelector.parse(ref)
    if selector.version is None:
        raise ValueError(f"{ref} names no version number")
    return selector.model, selector.version


def version_labels(endpoint: str, ref: str) -> dict[str, str]:
    """The labels of `ref`'s pods on `endpoint` (its Service's and budget's selector)."""
    model, number = _parts(ref)
    return {
        "app.kubernetes.io/name": dns_name(endpoint),
        **MANAGED,
        "mlstack.io/model": dns_name(model),
        "mlstack.io/version": str(number),
    }


def version_name(endpoint: str, ref: str) -> str:
    """The name of `ref`'s Deployment, Service, autoscaler and budget on `endpoint`."""
    return dns_name(f"{endpoint}-v{_parts(ref)[1]}")


#: The kinds each version is made of, with their apiVersion (what undeploy deletes).
VERSION_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("policy/v1", "PodDisruptionBudget"),
)


def version_objects(target: KubernetesTarget, endpoint: str, ref: str) -> list[dict[str, Any]]:
    """`ref`'s Deployment, Service, autoscaler and PodDisruptionBudget, sized by the
    endpoint's own `endpoints` entry where it has one."""
    target = target.for_endpoint(endpoint)
    model, number = _parts(ref)
    name = version_name(endpoint, ref)
    labels = version_labels(endpoint, ref)
    metadata = {"name": name, "namespace": target.namespace, "labels": labels}
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": target.cpu, "memory": target.memory},
        "limits": {"memory": target.memory},
    }
    tolerated = [*target.tolerations, *(target.gpu_tolerations if target.gpus else ())]
    tolerations = [t.model_dump(exclude_none=True) for t in dict.fromkeys(tolerated)]
    node_selector = dict(target.node_selector)
    if target.gpus and not node_selector:
        node_selector = dict(target.gpu_node_selector)
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
                "image": target.image.format(model=dns_name(model), version=number),
                # BentoML's image entrypoint runs `bentoml serve ARGS $BENTO_PATH`: the bento
                # names its service, a second one here is an "unexpected extra argument"
                "args": [
                    "serve",
                    "--host",
                    "0.0.0.0",
                    "--port",
                    str(PORT),
                ],
                "env": [
                    {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
                    {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
                    *(
                        {
                            "name": ref.env,
                            "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}},
                        }
                        for ref in target.secrets
                    ),
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
    if target.priority_class:
        pod_spec["priorityClassName"] = target.priority_class
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    selector = {"matchLabels": labels}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**metadata, "annotations": {REF_KEY: ref}},
            "spec": {  # no replicas: the autoscaler's (an apply would reset them)
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
        autoscaler(target, endpoint, ref),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata,
            "spec": {"minAvailable": 1, "selector": selector},
        },
    ]


def autoscaler(target: KubernetesTarget, endpoint: str, ref: str) -> dict[str, Any]:
    """A HorizontalPodAutoscaler on CPU; with `keda`, a KEDA ScaledObject on the request
    rate its Prometheus query reads (down to zero when its min_replicas is 0)."""
    name = version_name(endpoint, ref)
    metadata = {
        "name": name,
        "namespace": target.namespace,
        "labels": version_labels(endpoint, ref),
    }
    keda = target.keda
    if keda is not None:
        query = keda.query.format(endpoint=endpoint, ref=ref, service=name)
        return {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": metadata,
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicaCount": keda.min_replicas,
                "maxReplicaCount": max(target.max_replicas, keda.min_replicas, 1),
                "cooldownPeriod": keda.cooldown_seconds,
                "triggers": [
                    {
                        "type": "prometheus",
                        "metadata": {
                            "serverAddress": keda.prometheus,
                            "query": query,
                            "threshold": f"{keda.requests_per_second:g}",
                        },
                    }
                ],
            },
        }
    return {
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
    }


def route(
    target: KubernetesTarget, endpoint: str, split: TrafficSplit, revision: int
) -> dict[str, Any]:
    """The HTTPRoute carrying `split`, the split and `revision` in its annotations."""
    backends = [
        {"name": version_name(endpoint, ref), "port": PORT, "weight": round(weight * 100)}
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
                    "backendRef": {"name": version_name(endpoint, ref), "port": PORT}
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
    state = {
        "weights": dict(split.weights),
        "shadows": list(split.shadows),
        "sticky": split.sticky,
        "champion": split.champion,
        "deadline_ms": split.deadline_ms,
    }
    annotations = {
        ENDPOINT_KEY: endpoint,
        REVISION_KEY: str(revision),
        SPLIT_KEY: json.dumps(state, sort_keys=True),
    }
    if split.sticky:
        # Gateway API has no sticky weights in its standard channel; the endpoint assigns
        # A/B arms by the subject header itself, so the route only states the shares.
        annotations["mlstack.io/ab-subject-header"] = "x-mlstack-subject"
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": dns_name(endpoint),
            "namespace": target.namespace,
            "labels": {"app.kubernetes.io/name": dns_name(endpoint), **MANAGED},
            "annotations": annotations,
        },
        "spec": spec,
    }


def split_of(route: dict[str, Any]) -> TrafficSplit:
    """The split an HTTPRoute mlstack applied carries (its annotation)."""
    state = json.loads(route["metadata"]["annotations"][SPLIT_KEY])
    return TrafficSplit(
        {str(ref): float(w) for ref, w in state["weights"].items()},
        tuple(state.get("shadows") or ()),
        bool(state.get("sticky")),
        champion=state.get("champion"),
        deadline_ms=state.get("deadline_ms"),
    )
