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
#: Envoy Gateway's controller pods (its chart's Deployment) and the ports others reach it on
#: (v1.9.0: internal/xds/bootstrap, internal/provider/kubernetes): the xDS server its proxies
#: take their configuration from, and the topology injector's admission webhook, which the
#: API server calls. Its metrics (19001) are not scraped here, so not admitted.
CONTROLLER_PODS = {"control-plane": "envoy-gateway"}
XDS_PORT = 18000
WEBHOOK_PORT = 9443
#: The konnectivity agents in kube-system, through which an API server that cannot dial the
#: nodes reaches them: its webhook calls arrive from these pods' addresses. AKS runs them for
#: every cluster (labelled `app`); GKE on its newer versions (tigera/operator#5212) and
#: Kubernetes' own konnectivity setup (kubeadm clusters that follow it, k0s) label them
#: `k8s-app`.
AKS_KONNECTIVITY_AGENTS = {"app": "konnectivity-agent"}
KONNECTIVITY_AGENTS = {"k8s-app": "konnectivity-agent"}
CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
#: The Gateway (in the serving namespace), the proxies' Service (in PROXY_NAMESPACE), and
#: what the exported stack file names (`server.kubernetes.gateway`).
GATEWAY = "mlstack-gateway"
GATEWAY_CLASS = "mlstack"
LISTENER_PORT = 80
#: The proxies' container port for LISTENER_PORT: Envoy Gateway shifts a port under 1024 by
#: 10000 so the proxy binds it unprivileged (internal/gatewayapi/listener.go, v1.9.0); a
#: NetworkPolicy sees the pod's port, not the Service's.
PROXY_PORT = LISTENER_PORT + 10000 if LISTENER_PORT < 1024 else LISTENER_PORT
#: The policy that opens the proxies' listener: the one policy that may admit every client
#: (the cluster's pods; with `serving_public`, any address, through the load balancer).
LISTENER_POLICY = "allow-gateway-listener"
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
    """The EnvoyProxy, GatewayClass and Gateway, and PROXY_NAMESPACE's NetworkPolicies (none
    without `services.serving`)."""
    from mlstack_infra.manifests import SERVING  # it imports this module's names

    if not spec.services.serving:
        return []
    service = "LoadBalancer" if spec.serving_public else "ClusterIP"
    return [
        *network_policies(spec),
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


def listener_clients(spec: InfraSpec) -> list[Manifest]:
    """Who the Gateway is for: every pod of the cluster (the proxies' Service is a
    ClusterIP), and with `serving_public` any address too (the load balancer keeps the
    client's: Envoy Gateway's Service has `externalTrafficPolicy: Local`)."""
    clients: list[Manifest] = [{"namespaceSelector": {}}]
    if spec.serving_public:
        clients.append({"ipBlock": {"cidr": "0.0.0.0/0"}})
    return clients


def _konnectivity_agents(labels: dict[str, str]) -> Manifest:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": dict(labels)},
    }


def webhook_callers(spec: InfraSpec) -> list[Manifest]:
    """Where the API server's calls to the controller's webhook come from, on each target:
    EKS: its control-plane interfaces, in the cluster's private subnets; GKE: its master
    range (reaching the nodes through the firewall rule gcp.py adds), and the konnectivity
    agents its newer versions route control-plane traffic through; AKS: the konnectivity
    agents (its API server reaches the nodes only through them); on-prem: the networks
    `control_plane_cidrs` names (the control-plane nodes, as the CNI sees them), and
    konnectivity agents where the cluster runs them."""
    from mlstack_infra.cloud import AWS_PRIVATE_SUBNETS, GKE_MASTER_CIDR

    ranges = {
        "aws": AWS_PRIVATE_SUBNETS,
        "gcp": (GKE_MASTER_CIDR,),
        "onprem": spec.control_plane_cidrs,
    }.get(spec.target, ())
    agents = {
        "azure": AKS_KONNECTIVITY_AGENTS,
        "gcp": KONNECTIVITY_AGENTS,
        "onprem": KONNECTIVITY_AGENTS,
    }.get(spec.target)
    callers: list[Manifest] = [{"ipBlock": {"cidr": cidr}} for cidr in ranges]
    return callers + ([_konnectivity_agents(agents)] if agents else [])


def network_policies(spec: InfraSpec) -> list[Manifest]:
    """PROXY_NAMESPACE denies ingress by default, then admits the Gateway's clients to the
    proxies' listener, the proxies to the controller's xDS port, and the API server to its
    webhook. Applied with the Gateway: the namespace is Envoy Gateway's release's."""
    from mlstack_infra.manifests import network_policy

    def tcp(port: int) -> list[Manifest]:
        return [{"port": port, "protocol": "TCP"}]

    proxies = {"podSelector": {"matchLabels": dict(PROXY_LABELS)}}
    objects = [
        network_policy("default-deny-ingress", PROXY_NAMESPACE, None, []),
        network_policy(
            LISTENER_POLICY,
            PROXY_NAMESPACE,
            PROXY_LABELS,
            [{"from": listener_clients(spec), "ports": tcp(PROXY_PORT)}],
        ),
    ]
    controller = [
        {"from": [proxies], "ports": tcp(XDS_PORT)},
        {"from": webhook_callers(spec), "ports": tcp(WEBHOOK_PORT)},
    ]
    objects.append(
        network_policy("allow-envoy-gateway", PROXY_NAMESPACE, CONTROLLER_PODS, controller)
    )
    return objects
