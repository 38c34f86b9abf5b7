"""The serving gateway both paths install: the Gateway API's standard-channel CRDs, Envoy
Gateway from its official chart (pinned), then the GatewayClass and the `Gateway` the
router's HTTPRoutes attach to, each after what it needs; the serving pods reachable from the
namespace Envoy Gateway runs its proxies in; the proxies behind a load balancer only with
`serving_public`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlstack_infra import gateway
from mlstack_infra.manifests import SERVING, Endpoints, render
from mlstack_infra.policies import violations
from mlstack_infra.posture import kubernetes_items
from mlstack_infra.stack_output import stack_document

from tests.infra.conftest import RecordingMocks
from tests.infra.test_targets import declare, of, spec_for
from tests.infra.test_terraform import example_spec, resources, synthesized


def named(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def test_pulumi_installs_the_crds_then_envoy_gateway_then_the_gateway(
    mocks: RecordingMocks,
) -> None:
    declared = declare(mocks, spec_for("aws"))
    [crds] = of(declared, "kubernetes:helm.sh/v4:Chart")
    assert crds.inputs["chart"] == "oci://docker.io/envoyproxy/gateway-crds-helm"
    assert crds.inputs["version"] == gateway.ENVOY_GATEWAY_VERSION
    assert crds.inputs["values"]["crds"] == {
        "gatewayAPI": {"enabled": True, "channel": "standard"},
        "envoyGateway": {"enabled": True},
    }
    [release] = of(declared, "kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == "oci://docker.io/envoyproxy/gateway-helm"
    assert release.inputs["version"] == gateway.ENVOY_GATEWAY_VERSION
    assert release.inputs["namespace"] == "envoy-gateway-system"
    assert release.inputs["values"] == {"crds": {"enabled": False}}  # the CRDs are the chart's
    assert release.inputs["skipCrds"] is True

    [group] = [
        g for g in of(declared, "kubernetes:yaml/v2:ConfigGroup") if g.name.endswith("-gateway")
    ]
    objects = named(group.inputs["objs"])
    assert objects["GatewayClass"]["spec"]["controllerName"] == (
        "gateway.envoyproxy.io/gatewayclass-controller"
    )
    declared_gateway = objects["Gateway"]
    assert declared_gateway["metadata"] == {
        "name": "mlstack-gateway",
        "namespace": SERVING,
        "labels": {"app.kubernetes.io/part-of": "mlstack"},
    }
    assert (
        declared_gateway["spec"]["gatewayClassName"] == objects["GatewayClass"]["metadata"]["name"]
    )
    [listener] = declared_gateway["spec"]["listeners"]
    assert (listener["protocol"], listener["port"]) == ("HTTP", 80)

    assert crds.name in mocks.waits_for(release.name)
    assert {release.name, crds.name, "mlstack-services"} <= mocks.waits_for(group.name)


def test_terraform_installs_the_same_in_the_same_order(terraform_out: Path) -> None:
    config = synthesized(terraform_out, "aws")
    releases = resources(config, "helm_release")
    crds = releases["mlstack-gateway-api-crds"]
    job = next(o for o in json.loads(crds["values"][0])["objects"] if o["kind"] == "Job")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "oci://docker.io/envoyproxy/gateway-crds-helm --version v1.9.0" in script
    assert "crds.gatewayAPI.channel=standard" in script
    assert "kubectl apply --server-side" in script
    assert crds["wait_for_jobs"] is True

    controller = releases["mlstack-envoy-gateway"]
    assert controller["chart"] == "oci://docker.io/envoyproxy/gateway-helm"
    assert controller["version"] == gateway.ENVOY_GATEWAY_VERSION
    assert controller["namespace"] == "envoy-gateway-system"
    assert controller["skip_crds"] is True
    assert json.loads(controller["values"][0]) == {"crds": {"enabled": False}}
    assert controller["depends_on"] == ["helm_release.mlstack-gateway-api-crds"]

    objects = releases["mlstack-gateway"]
    assert json.loads(objects["values"][0])["objects"] == gateway.objects(example_spec("aws"))
    assert set(objects["depends_on"]) == {
        "helm_release.mlstack-envoy-gateway",
        "helm_release.mlstack-services-release",
    }


def test_the_proxies_are_behind_a_load_balancer_only_when_serving_is_public() -> None:
    def service(public: bool) -> dict[str, Any]:
        proxy = named(gateway.objects(spec_for("aws", serving_public=public)))["EnvoyProxy"]
        assert proxy["metadata"]["namespace"] == "envoy-gateway-system"
        return dict(proxy["spec"]["provider"]["kubernetes"]["envoyService"])

    assert service(False) == {"name": "mlstack-gateway", "type": "ClusterIP"}
    assert service(True) == {"name": "mlstack-gateway", "type": "LoadBalancer"}
    public = kubernetes_items(gateway.objects(spec_for("aws", serving_public=True)))
    assert violations(public, serving_public=True) == {}
    assert violations(public, serving_public=False) == {
        "no_open_ingress": [
            "the proxies of EnvoyProxy mlstack-gateway are behind a public load balancer"
        ],
        "no_allow_all_ingress": [
            "NetworkPolicy envoy-gateway-system/allow-gateway-listener admits ingress from "
            "anyone (cidr:0.0.0.0/0, namespaces:all)"
        ],
    }


def test_without_serving_there_is_no_gateway(mocks: RecordingMocks) -> None:
    declared = declare(mocks, spec_for("aws", services={"serving": False}))
    assert not of(declared, "kubernetes:helm.sh/v3:Release")
    assert not of(declared, "kubernetes:helm.sh/v4:Chart")
    assert gateway.objects(spec_for("aws", services={"serving": False})) == []


def test_the_serving_pods_admit_the_proxies_namespace_on_their_port_only() -> None:
    objects = render(spec_for("aws"), Endpoints("s3://b/mlflow", "db"))
    [policy] = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "only-the-gateway"
    ]
    proxies = {
        "from": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}
                }
            }
        ],
        "ports": [{"port": 3000, "protocol": "TCP"}],
    }
    assert proxies in policy["spec"]["ingress"]
    assert not [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["namespace"] == SERVING
    ]


def test_the_routers_objects_attach_to_the_gateway_infra_creates_and_admit_its_proxies() -> None:
    from stack.contract.serving import TrafficSplit
    from stack_bentoml.config import KubernetesTarget
    from stack_bentoml.kubernetes import network_policy, route

    spec = example_spec("aws")
    exported = stack_document(spec, database_host="db")
    target = KubernetesTarget.model_validate(exported["server"]["kubernetes"])
    made = named(gateway.objects(spec))["Gateway"]

    attached = route(target, "churn", TrafficSplit({"churn@1": 1.0}), 1)
    [parent] = attached["spec"]["parentRefs"]
    namespace = parent.get("namespace", attached["metadata"]["namespace"])
    assert (parent["name"], namespace) == (made["metadata"]["name"], made["metadata"]["namespace"])
    # the listener takes routes from its own namespace only: the route is there
    assert made["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}

    admitted = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in network_policy(target, "churn")["spec"]["ingress"]
        for peer in rule["from"]
    }
    assert admitted == {gateway.PROXY_NAMESPACE, SERVING}
    # and the default config, without the exported file, says the same
    assert KubernetesTarget().gateway == gateway.GATEWAY
    assert KubernetesTarget().proxy_namespace == gateway.PROXY_NAMESPACE
