"""A full canary and a rollback on a real cluster: `make test-cluster` (see docs/serving.md).

Skipped, saying why, unless KUBECONFIG names a cluster that answers, with the Gateway API
installed, and MLSTACK_LIVE_IMAGE names the endpoint images (`repo/churn:{model}-v{version}`:
built for versions 1 and 2, as `mlstack deploy --target bento` and `bentoml containerize`
make them). Version 3's image is never built: it never pulls, and its canary is rolled back
with the champion left serving. MLSTACK_LIVE_GATEWAY names the Gateway (default
mlstack-gateway) in MLSTACK_LIVE_GATEWAY_NAMESPACE; unset, the test makes that Gateway in its
own namespace, of the GatewayClass MLSTACK_LIVE_GATEWAY_CLASS (default `mlstack`, the class
the infra program creates for Envoy Gateway), since a Gateway takes routes from its own
namespace. MLSTACK_LIVE_PROXY_NAMESPACE is where the implementation runs its proxies
(default envoy-gateway-system, Envoy Gateway's). MLSTACK_LIVE_PRIORITY_CLASS names the
pods' PriorityClass (the infra program's `mlstack-serving`); unset, they name none, since a
missing class makes the API refuse every pod. Everything is made in a fresh namespace,
deleted after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.config.rollout import RolloutPlan, ServiceLevels
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout import RolloutController
from stack.rollout.kubernetes import router_for
from stack.session import StackSession
from stack_bentoml.cluster import ClusterRouter
from stack_bentoml.kubelease import EndpointLeased, lease_name
from tests.adapters.bentoml.models import register_versions


def _why_not() -> str | None:
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig or not Path(kubeconfig.split(os.pathsep)[0]).is_file():
        return "KUBECONFIG does not name a kubeconfig file: no cluster to test on"
    if not os.environ.get("MLSTACK_LIVE_IMAGE"):
        return "MLSTACK_LIVE_IMAGE is not set: no endpoint image for the versions"
    try:
        from kubernetes import client, config  # type: ignore[import-untyped]

        api = config.new_client_from_config(config_file=kubeconfig)
        groups = client.ApisApi(api).get_api_versions(_request_timeout=10).groups
    except Exception as exc:
        return f"the cluster in KUBECONFIG does not answer: {type(exc).__name__}: {exc}"
    if not any(g.name == "gateway.networking.k8s.io" for g in groups):
        return "the cluster has no Gateway API (gateway.networking.k8s.io CRDs)"
    return None


WHY_NOT = _why_not()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


@pytest.fixture
def namespace() -> Iterator[str]:
    from kubernetes import client, config

    api_client = config.new_client_from_config()
    api = client.CoreV1Api(api_client)
    name = f"mlstack-live-{uuid.uuid4().hex[:8]}"
    api.create_namespace({"metadata": {"name": name}})
    if not os.environ.get("MLSTACK_LIVE_GATEWAY_NAMESPACE"):  # a Gateway of the test's own
        gateway = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": os.environ.get("MLSTACK_LIVE_GATEWAY", "mlstack-gateway")},
            "spec": {
                "gatewayClassName": os.environ.get("MLSTACK_LIVE_GATEWAY_CLASS", "mlstack"),
                "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
            },
        }
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", name, "gateways", gateway
        )
    try:
        yield name
    finally:
        api.delete_namespace(name)


def _lease(namespace: str, endpoint: str) -> Any:
    from kubernetes import client, config

    api = client.CoordinationV1Api(config.new_client_from_config())
    return api.read_namespaced_lease(lease_name(endpoint), namespace)


def test_a_canary_promotes_and_a_version_that_never_pulls_rolls_back(
    tmp_path: Path, namespace: str
) -> None:
    gateway_namespace = os.environ.get("MLSTACK_LIVE_GATEWAY_NAMESPACE")
    (tmp_path / "stack.yaml").write_text(
        f"""
name: live
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
server:
  adapter: bentoml
  kubernetes:
    namespace: {namespace}
    image: "{os.environ["MLSTACK_LIVE_IMAGE"]}"
    min_replicas: 1
    max_replicas: 2
    cpu: 100m
    memory: 1Gi
    gateway: {os.environ.get("MLSTACK_LIVE_GATEWAY", "mlstack-gateway")}
    gateway_namespace: {gateway_namespace or "null"}
    proxy_namespace: {os.environ.get("MLSTACK_LIVE_PROXY_NAMESPACE", "envoy-gateway-system")}
    priority_class: {os.environ.get("MLSTACK_LIVE_PRIORITY_CLASS") or "null"}
    ready_timeout_seconds: 600
spine: {{url: "sqlite:///.mlstack/spine.db"}}
"""
    )
    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
        versions = register_versions(session.adapter_context())
        governance = Governance(session)
        for version in (versions.champion, versions.challenger, versions.quirky):
            governance.promote(version.ref, S.APPROVED)
        router = router_for(session, "kubernetes")
        controller = RolloutController(session, router=router)
        first = controller.deploy(versions.champion, RolloutPlan(strategy="direct"))
        assert first.outcome == "deployed"

        canary = RolloutPlan(
            strategy="canary",
            steps=(0.2, 1.0),
            bake_seconds=30,
            check_seconds=5,
            slo=ServiceLevels(min_requests=0),
        )
        promoted = controller.deploy(versions.challenger, canary)
        assert promoted.outcome == "promoted", promoted.reasons

        # one rollout at a time: while this process holds the endpoint's Lease, a deploy
        # from another (a router of its own: another machine's) is refused, naming it
        other = RolloutController(session, router=router_for(session, "kubernetes"))
        assert isinstance(router, ClusterRouter)
        name = promoted.endpoint.name
        with router.hold(name) as lease, pytest.raises(EndpointLeased) as refused:
            other.deploy(versions.quirky, canary)
        assert f"rolling out already from {lease.identity} " in str(refused.value)
        held = _lease(namespace, name)
        assert not held.spec.holder_identity  # released
        assert governance.version(versions.quirky.ref).state is S.APPROVED

        broken = controller.deploy(versions.quirky, canary)  # its image was never built
        assert broken.outcome == "rolled_back"
        assert "never pulls" in " ".join(broken.reasons)
        [endpoint] = router.endpoints()
        assert dict(endpoint.split.weights) == {versions.challenger.ref: 1.0}
        assert governance.version(versions.challenger.ref).state is S.SERVING
        router.undeploy(endpoint.name)
        assert router.endpoints() == []
