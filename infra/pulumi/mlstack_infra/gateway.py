"""The serving gateway: the Gateway API's standard-channel CRDs, Envoy Gateway (its official
Helm chart) and the `Gateway` the endpoints' HTTPRoutes attach to, as both paths install
them. No Pulumi here: the Terraform app imports it too.

Order (each waits for the one before): the CRDs (Envoy Gateway's `gateway-crds-helm`
chart rendered with the Gateway API's standard channel and Envoy Gateway's own CRDs, as its
documentation installs them: `helm template … | kubectl apply --server-side`, since the CRDs
are too large for a Helm release), then Envoy Gateway's controller (`gateway-helm`, its CRDs
off) in PROXY_NAMESPACE, then `objects`: the EnvoyProxy that shapes the proxies' Service, the
GatewayClass and the Gateway (HTTP on port 80) in the serving namespace.

Two namespaces, two meanings: the Gateway and the HTTPRoutes live in the serving namespace;
Envoy Gateway runs the proxy pods that carry the traffic in its own (PROXY_NAMESPACE), so
the serving pods admit that namespace. The proxies' Service is `GATEWAY` in
PROXY_NAMESPACE (a stable in-cluster name), a LoadBalancer only with `serving_public`."""

from __future__ import annotations

from typing import Any

from mlstack_infra.spec import InfraSpec

#: Envoy Gateway's release; its CRD chart carries the Gateway API release it supports
#: (v1.9.0: Gateway API v1.6.1, standard channel here).
ENVOY_GATEWAY_VERSION = "v1.9.0"
GATEWAY_API_VERSION = "v1.6.1"
CRDS_CHART = "oci://docker.io/envoyproxy/gateway-crds-helm"
CHART = "oci://docker.io/envoyproxy/gateway-helm"
#: Where Envoy Gateway's controller and the proxy pods it creates run.
PROXY_NAMESPACE = "envoy-gateway-system"
#: Labels Envoy Gateway puts on its proxy pods (internal/infrastructure/kubernetes/proxy).
PROXY_LABELS = {
    "app.kubernetes.io/name": "envoy",
    "app.kubernetes.io/component": "proxy",
    "app.kubernetes.io/managed-by": "envoy-gateway",
}
CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
#: The Gateway (in the serving namespace), the proxies' Service (in PROXY_NAMESPACE), and
#: what the exported stack file names (`server.kubernetes.gateway`).
GATEWAY = "mlstack-gateway"
GATEWAY_CLASS = "mlstack"
LISTENER_PORT = 80
#: The Helm releases (and Pulumi resources) of the CRDs and of Envoy Gateway.
CRDS_RELEASE = "gateway-api-crds"
RELEASE = "envoy-gateway"

Manifest = dict[str, Any]

#: The CRD chart's values: the Gateway API's standard channel and Envoy Gateway's own.
CRD_VALUES: Manifest = {
    "crds": {
        "gatewayAPI": {"enabled": True, "channel": "standard"},
        "envoyGateway": {"enabled": True},
    }
}
#: gateway-helm's values: its CRDs come from the CRD chart.
VALUES: Manifest = {"crds": {"enabled": False}}


def crds_script() -> str:
    """The shell command (helm and kubectl) that installs the CRDs, as Envoy Gateway's
    documentation gives it: the Terraform path runs it in a Job (Pulumi renders the chart)."""
    return (
        f"set -eu; helm template {CRDS_RELEASE} {CRDS_CHART} --version "
        f"{ENVOY_GATEWAY_VERSION} --set crds.gatewayAPI.enabled=true "
        "--set crds.gatewayAPI.channel=standard --set crds.envoyGateway.enabled=true "
        "| kubectl apply --server-side --force-conflicts -f - && "
        "kubectl wait --for condition=established --timeout=120s "
        "crd/gateways.gateway.networking.k8s.io crd/httproutes.gateway.networking.k8s.io "
        "crd/envoyproxies.gateway.envoyproxy.io"
    )


def _meta(name: str, namespace: str | None) -> Manifest:
    meta: Manifest = {"name": name, "labels": {"app.kubernetes.io/part-of": "mlstack"}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def objects(spec: InfraSpec) -> list[Manifest]:
    """The EnvoyProxy, GatewayClass and Gateway (none without `services.serving`)."""
    from mlstack_infra.manifests import SERVING  # it imports this module's names

    if not spec.services.serving:
        return []
    service = "LoadBalancer" if spec.serving_public else "ClusterIP"
    return [
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyProxy",
            "metadata": _meta(GATEWAY, PROXY_NAMESPACE),
            "spec": {
                "provider": {
                    "type": "Kubernetes",
                    "kubernetes": {"envoyService": {"name": GATEWAY, "type": service}},
                }
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": _meta(GATEWAY_CLASS, None),
            "spec": {
                "controllerName": CONTROLLER,
                "parametersRef": {
                    "group": "gateway.envoyproxy.io",
                    "kind": "EnvoyProxy",
                    "name": GATEWAY,
                    "namespace": PROXY_NAMESPACE,
                },
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": _meta(GATEWAY, SERVING),
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": "http",
                        "protocol": "HTTP",
                        "port": LISTENER_PORT,
                        "allowedRoutes": {"namespaces": {"from": "Same"}},
                    }
                ],
            },
        },
    ]
