"""NetworkPolicies: ingress denied by default in each mlstack namespace and opened service by
service (MLflow, Feast, Redis from the mlstack, serving and Kubeflow namespaces; the
monitoring exporter from Prometheus'; the endpoints from the gateway's proxies, never from
anyone, even behind a public gateway), Envoy Gateway's namespace likewise (its proxies'
listener from the cluster, and from any address only behind a public gateway; its
controller's xDS from the proxies, its webhook from wherever each target's API server calls
it: EKS's subnets, GKE's master range and konnectivity agents, AKS's konnectivity agents,
on-prem the networks the spec names and konnectivity agents), enforced on every
cluster (EKS: the VPC CNI add-on's `enableNetworkPolicy`), the same on both paths, and the
rules that refuse an allow-all policy or a namespace with no default deny."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlstack_infra import gateway
from mlstack_infra.manifests import Endpoints, render
from mlstack_infra.policies import Declared, violations
from mlstack_infra.posture import from_pulumi, kubernetes_items
from mlstack_infra.spec import SpecError, parse_spec

from tests.infra.conftest import TARGETS, RecordingMocks, run_program
from tests.infra.test_targets import spec_for
from tests.infra.test_terraform import pulumi_posture, resources, synthesize, synthesized


def policies(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": o["spec"]
        for o in objects
        if o["kind"] == "NetworkPolicy"
    }


def sources(spec: dict[str, Any]) -> set[tuple[str, int]]:
    return {
        (peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
        for rule in spec["ingress"]
        for peer in rule["from"]
        for port in rule["ports"]
    }


def test_each_namespace_denies_ingress_and_opens_each_service_to_its_clients_only() -> None:
    spec = spec_for("aws", services={"prometheus": {}, "monitoring": [{"model": "churn"}]})
    found = policies(render(spec, Endpoints("s3://b/mlflow", "db")))
    for namespace in ("mlstack", "mlstack-serving"):
        deny = found[f"{namespace}/default-deny-ingress"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}
    clients = {"mlstack", "mlstack-serving", "kubeflow"}
    for app, port in (("mlflow", 5000), ("feature-server", 6566), ("redis", 6379)):
        policy = found[f"mlstack/allow-{app}"]
        assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": app}}
        assert sources(policy) == {(ns, port) for ns in clients}
    assert "mlstack-serving/gateway-from-load-balancer" not in found  # a private gateway
    from mlstack_infra.observability import manifests as observability

    exporter = policies(observability(spec))["mlstack/allow-mlstack-monitor-exporter"]
    assert sources(exporter) == {("monitoring", 9410)}


def test_a_public_gateway_opens_its_proxies_listener_not_the_endpoints() -> None:
    spec = spec_for("aws", serving_public=True)
    objects = render(spec, Endpoints("s3://b/mlflow", "db")) + gateway.objects(spec)
    serving = policies(objects)["mlstack-serving/only-the-gateway"]
    assert sources({"ingress": serving["ingress"][2:3]}) == {("envoy-gateway-system", 3000)}
    by_address = {
        (name, peer["ipBlock"]["cidr"], port["port"])
        for name, policy in policies(objects).items()
        for rule in policy["ingress"]
        for peer in rule.get("from", [])
        if "ipBlock" in peer
        for port in rule["ports"]
    }
    # any address on the proxies' listener only; the rest is the API server's (below)
    assert {(n, c, p) for n, c, p in by_address if c == "0.0.0.0/0"} == {
        ("envoy-gateway-system/allow-gateway-listener", "0.0.0.0/0", 10080)
    }
    assert {n for n, _, _ in by_address} <= {
        "envoy-gateway-system/allow-gateway-listener",
        "envoy-gateway-system/allow-envoy-gateway",
    }
    posture = kubernetes_items(objects)
    assert violations(posture, serving_public=True) == {}
    assert list(violations(posture, serving_public=False)) == [
        "no_open_ingress",
        "no_allow_all_ingress",
    ]


def test_envoy_gateways_namespace_denies_ingress_but_the_listener_xds_and_webhook() -> None:
    found = policies(gateway.objects(spec_for("aws")))
    assert found["envoy-gateway-system/default-deny-ingress"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [],
    }
    listener = found["envoy-gateway-system/allow-gateway-listener"]
    # Envoy Gateway's proxy pods; the Gateway's port 80 is their container port 10080
    assert listener["podSelector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "envoy",
            "app.kubernetes.io/component": "proxy",
            "app.kubernetes.io/managed-by": "envoy-gateway",
        }
    }
    # a private gateway: every pod of the cluster, no address
    assert listener["ingress"] == [
        {"from": [{"namespaceSelector": {}}], "ports": [{"port": 10080, "protocol": "TCP"}]}
    ]
    controller = found["envoy-gateway-system/allow-envoy-gateway"]
    assert controller["podSelector"] == {"matchLabels": {"control-plane": "envoy-gateway"}}
    xds, webhook = controller["ingress"]
    assert xds == {
        "from": [{"podSelector": {"matchLabels": listener["podSelector"]["matchLabels"]}}],
        "ports": [{"port": 18000, "protocol": "TCP"}],
    }
    # EKS calls webhooks from its control-plane interfaces in the cluster's subnets
    assert webhook == {
        "from": [
            {"ipBlock": {"cidr": c}} for c in ("10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20")
        ],
        "ports": [{"port": 9443, "protocol": "TCP"}],
    }
    assert len(found) == 3  # the controller's metrics are not scraped: not admitted


KUBE_SYSTEM = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
#: The konnectivity agents as GKE and Kubernetes' own konnectivity setup label them.
KONNECTIVITY_AGENTS = {
    **KUBE_SYSTEM,
    "podSelector": {"matchLabels": {"k8s-app": "konnectivity-agent"}},
}


ONPREM: dict[str, Any] = {
    "target": "onprem",
    "region": "dc-1",
    "node_pools": [{"name": "gpu", "machine_type": "x"}],
}


def onprem_spec(**extra: Any) -> Any:
    return parse_spec({**ONPREM, **extra})


def webhook_sources(spec: Any) -> list[list[dict[str, Any]]]:
    """The sources of each rule of allow-envoy-gateway that admits the webhook's port."""
    controller = policies(gateway.objects(spec))["envoy-gateway-system/allow-envoy-gateway"]
    return [r["from"] for r in controller["ingress"] if r["ports"][0]["port"] == 9443]


@pytest.mark.parametrize(
    ("target", "sources"),
    [
        # GKE calls from its master range, or on its newer versions through konnectivity
        # agents (tigera/operator#5212), whose pods' addresses the webhook's calls then carry
        ("gcp", [{"ipBlock": {"cidr": "172.16.0.0/28"}}, KONNECTIVITY_AGENTS]),
        # AKS's API server reaches the nodes through its konnectivity agents: its webhook
        # calls come from those pods
        ("azure", [{**KUBE_SYSTEM, "podSelector": {"matchLabels": {"app": "konnectivity-agent"}}}]),
    ],
)
def test_the_webhook_is_admitted_from_where_the_api_server_calls_it(
    target: str, sources: list[dict[str, Any]]
) -> None:
    assert webhook_sources(spec_for(target)) == [sources]


def test_onprem_admits_the_control_plane_networks_the_spec_names_and_konnectivity_agents() -> None:
    agents = KONNECTIVITY_AGENTS
    # named nowhere, the API server still reaches the webhook where it goes through
    # konnectivity (Kubernetes' own setup labels the agents k8s-app)
    assert webhook_sources(onprem_spec()) == [[agents]]
    spec = onprem_spec(control_plane_cidrs=["10.0.0.10/32", "10.0.8.0/24"])
    assert webhook_sources(spec) == [
        [{"ipBlock": {"cidr": "10.0.0.10/32"}}, {"ipBlock": {"cidr": "10.0.8.0/24"}}, agents]
    ]
    # those networks reach the webhook's port, nothing else
    objects = render(spec, Endpoints("s3://mlflow/artifacts", "postgres.mlstack"))
    by_address = {
        (name, peer["ipBlock"]["cidr"], port["port"])
        for name, policy in policies(objects + gateway.objects(spec)).items()
        for rule in policy["ingress"]
        for peer in rule.get("from", [])
        if "ipBlock" in peer
        for port in rule["ports"]
    }
    assert by_address == {
        ("envoy-gateway-system/allow-envoy-gateway", cidr, 9443)
        for cidr in ("10.0.0.10/32", "10.0.8.0/24")
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "target": "aws",
                "region": "us-east-1",
                "node_pools": [{"name": "system", "machine_type": "m6i.xlarge"}],
            },
            "mlstack:spec: control_plane_cidrs: only for target onprem; on aws the program knows "
            "where the API server calls webhooks from (remove it)",
        ),
        (
            {"control_plane_cidrs": ["0.0.0.0/0"]},
            "mlstack:spec: control_plane_cidrs[0]: 0.0.0.0/0 opens Envoy Gateway's admission "
            "webhook to all",
        ),
        (
            {"control_plane_cidrs": ["10.0.0.1/24"]},
            "mlstack:spec: control_plane_cidrs[0]: '10.0.0.1/24' is not an IPv4 CIDR",
        ),
    ],
)
def test_control_plane_cidrs_are_refused_off_prem_and_when_open_to_all(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({**ONPREM, "control_plane_cidrs": ["10.0.0.10/32"], **change})
    assert message in str(caught.value)


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_admits_the_api_server_to_the_webhook_on_both_paths(
    mocks: RecordingMocks, terraform_out: Path, target: str
) -> None:
    from mlstack_infra.posture import from_terraform

    name = "NetworkPolicy envoy-gateway-system/allow-envoy-gateway"
    for posture in (
        pulumi_posture(mocks, target),
        from_terraform(synthesized(terraform_out, target)),
    ):
        assert "the_gateway_webhook_is_admitted" not in violations(posture)
        [controller] = [i for i in posture if i.name == name]
        assert [ports for _, ports in controller.get("ingress")] == [("18000",), ("9443",)]
        without = [i for i in posture if i.name != name]
        assert violations(without)["the_gateway_webhook_is_admitted"] == [
            "no NetworkPolicy in envoy-gateway-system admits the API server to Envoy Gateway's "
            "admission webhook (port 9443): it is skipped for every proxy pod"
        ]


def test_both_paths_admit_the_control_plane_networks_the_spec_names(
    mocks: RecordingMocks, tmp_path: Path
) -> None:
    import pulumi
    from mlstack_infra.program import build

    data = {**ONPREM, "control_plane_cidrs": ["10.0.0.10/32"]}
    run_program(lambda: build(parse_spec(data), kubeconfig=pulumi.Output.secret("x")))
    [group] = [r for r in mocks.resources if r.name == "mlstack-gateway"]
    pulumi_side = policies(list(group.inputs["objs"]))
    release = resources(synthesize(data, tmp_path), "helm_release")["mlstack-gateway"]
    assert policies(json.loads(release["values"][0])["objects"]) == pulumi_side
    webhook = pulumi_side["envoy-gateway-system/allow-envoy-gateway"]["ingress"][1]
    assert webhook["from"][0] == {"ipBlock": {"cidr": "10.0.0.10/32"}}


def test_envoy_gateways_namespace_without_a_default_deny_is_refused(
    mocks: RecordingMocks,
) -> None:
    posture = pulumi_posture(mocks, "aws")
    assert "ingress_is_denied_by_default" not in violations(posture)
    without = [
        i for i in posture if i.name != "NetworkPolicy envoy-gateway-system/default-deny-ingress"
    ]
    assert violations(without)["ingress_is_denied_by_default"] == [
        "namespace envoy-gateway-system has no default-deny ingress NetworkPolicy"
    ]


def test_only_the_proxies_listener_may_admit_every_namespace() -> None:
    def admitted(name: str, port: int) -> dict[str, list[str]]:
        rule = {"from": [{"namespaceSelector": {}}], "ports": [{"port": port}]}
        policy = _policy(name, "envoy-gateway-system", {"podSelector": {}, "ingress": [rule]})
        return violations(kubernetes_items([policy]))

    assert admitted("allow-gateway-listener", 10080) == {}
    assert list(admitted("allow-gateway-listener", 18000)) == ["no_allow_all_ingress"]
    assert list(admitted("allow-anything", 10080)) == ["no_allow_all_ingress"]


def test_onprem_stores_are_open_to_their_clients_only() -> None:
    spec = onprem_spec()
    found = policies(render(spec, Endpoints("s3://mlflow/artifacts", "postgres.mlstack")))
    assert sources(found["mlstack/allow-minio"]) == {("mlstack", 9000)}
    assert ("mlstack-serving", 5432) in sources(found["mlstack/allow-postgres"])


def _policy(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.mark.parametrize(
    "rule",
    [
        {},  # no `from`: every source
        {"from": [{}]},
        {"from": [{"namespaceSelector": {}}]},
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
    ],
    ids=["no-from", "empty-peer", "every-namespace", "any-address"],
)
def test_an_allow_all_ingress_policy_is_refused(rule: dict[str, Any]) -> None:
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mlstack"}},
        _policy("default-deny-ingress", "mlstack", {"podSelector": {}, "policyTypes": ["Ingress"]}),
        _policy("open", "mlstack", {"podSelector": {}, "ingress": [rule]}),
    ]
    found = violations([Declared("kubernetes:yaml/v2:ConfigGroup", "g", {"objs": objects})])
    assert list(found) == ["no_allow_all_ingress"]
    assert found["no_allow_all_ingress"][0].startswith("NetworkPolicy mlstack/open admits")


def test_a_namespace_with_no_default_deny_is_refused() -> None:
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mlstack"}}]
    found = violations([Declared("kubernetes:yaml/v2:ConfigGroup", "g", {"objs": objects})])
    assert found == {
        "ingress_is_denied_by_default": [
            "namespace mlstack has no default-deny ingress NetworkPolicy"
        ]
    }


def test_eks_enforces_network_policies_through_the_vpc_cni_on_both_paths(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    pulumi_posture(mocks, "aws")
    [addon] = [
        r.inputs
        for r in mocks.resources
        if r.type == "aws:eks/addon:Addon" and r.inputs["addonName"] == "vpc-cni"
    ]
    assert json.loads(addon["configurationValues"]) == {"enableNetworkPolicy": "true"}
    [tf] = [
        a
        for a in resources(synthesized(terraform_out, "aws"), "aws_eks_addon").values()
        if a["addon_name"] == "vpc-cni"
    ]
    assert json.loads(tf["configuration_values"]) == {"enableNetworkPolicy": "true"}
    [cluster] = [i for i in from_pulumi(mocks.resources) if i.kind == "cluster"]
    assert cluster.get("network_policy") is True
    without = [
        r for r in mocks.resources if not (r.type == "aws:eks/addon:Addon" and "vpc-cni" in r.name)
    ]
    assert "network_policies_are_enforced" in violations(without)


@pytest.mark.parametrize("target", TARGETS)
def test_both_paths_declare_the_same_network_policies(
    mocks: RecordingMocks, terraform_out: Path, target: str
) -> None:
    from mlstack_infra.posture import from_terraform

    def of(items: list[Any]) -> set[Any]:
        return {i for i in items if i.name.startswith("NetworkPolicy ")}

    pulumi_side = of(pulumi_posture(mocks, target))
    assert pulumi_side == of(from_terraform(synthesized(terraform_out, target)))
    names = {i.name for i in pulumi_side}
    assert {
        "NetworkPolicy mlstack/default-deny-ingress",
        "NetworkPolicy mlstack-serving/default-deny-ingress",
        "NetworkPolicy envoy-gateway-system/default-deny-ingress",
        "NetworkPolicy envoy-gateway-system/allow-gateway-listener",
        "NetworkPolicy envoy-gateway-system/allow-envoy-gateway",
    } <= names
