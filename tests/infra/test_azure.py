"""Azure as both paths declare it: the pods that act as the services' managed identity are
labelled for AKS's workload identity webhook (MLflow reaches the blobs through it, with no
account key), and spot GPU pools carry AKS's spot taint, which serving pods tolerate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from mlstack_infra.policies import Declared
from mlstack_infra.stack_output import render_stack

from tests.infra.conftest import RecordingMocks
from tests.infra.test_targets import declare, of, spec_for
from tests.infra.test_terraform import resources, synthesized

SPOT = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"
SPOT_TOLERATION = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def services(declared: list[Declared]) -> dict[str, dict[str, Any]]:
    [group] = of(declared, "kubernetes:yaml/v2:ConfigGroup")
    return {f"{o['kind']} {o['metadata']['name']}": o for o in group.inputs["objs"]}


def released(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    release = resources(config, "helm_release")["mlstack-services-release"]
    objects = json.loads(release["values"][0])["objects"]
    return {f"{o['kind']} {o['metadata']['name']}": o for o in objects}


def template(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    return dict(
        spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
    )


def test_the_services_pods_use_the_managed_identity_and_no_account_key(
    mocks: RecordingMocks,
) -> None:
    objects = services(declare(mocks, spec_for("azure")))
    account = objects["ServiceAccount mlstack"]["metadata"]["annotations"]
    assert account == {"azure.workload.identity/client-id": "client-1"}
    for key in ("Deployment mlflow", "Deployment feature-server", "CronJob monitor-churn"):
        pod = template(objects[key])
        assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true", key
        assert pod["spec"]["serviceAccountName"] == "mlstack"
    redis = template(objects["Deployment redis"])
    assert "azure.workload.identity/use" not in redis["metadata"]["labels"]
    [mlflow] = template(objects["Deployment mlflow"])["spec"]["containers"]
    names = {e["name"] for e in mlflow["env"]}
    assert not names & {"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCESS_KEY"}
    destination = mlflow["args"][mlflow["args"].index("--artifacts-destination") + 1]
    assert destination.startswith("wasbs://mlflow@")  # DefaultAzureCredential: the identity


def test_other_clouds_pods_carry_no_azure_label(mocks: RecordingMocks) -> None:
    objects = services(declare(mocks, spec_for("aws")))
    labels = template(objects["Deployment mlflow"])["metadata"]["labels"]
    assert "azure.workload.identity/use" not in labels


def test_the_terraform_path_labels_the_same_pods(terraform_out: Path) -> None:
    objects = released(synthesized(terraform_out, "azure"))
    for key in ("Deployment mlflow", "Deployment feature-server"):
        assert template(objects[key])["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    annotations = objects["ServiceAccount mlstack"]["metadata"]["annotations"]
    assert set(annotations) == {"azure.workload.identity/client-id"}


def test_spot_gpu_pools_carry_the_spot_taint_on_both_paths(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    [pool] = of(declare(mocks, spec_for("azure")), "azure-native:containerservice:AgentPool")
    assert SPOT in pool.inputs["nodeTaints"]
    config = synthesized(terraform_out, "azure")
    gpu = resources(config, "azurerm_kubernetes_cluster_node_pool")["mlstack-gpu"]
    assert gpu["node_taints"] == ["nvidia.com/gpu=present:NoSchedule", SPOT]


def test_serving_pods_and_the_device_plugin_tolerate_the_spot_taint(
    mocks: RecordingMocks,
) -> None:
    spec = spec_for("azure")
    objects = services(declare(mocks, spec))
    namespace = objects["Namespace mlstack-serving"]
    default = json.loads(
        namespace["metadata"]["annotations"]["scheduler.alpha.kubernetes.io/defaultTolerations"]
    )
    assert SPOT_TOLERATION in default
    plugin = template(objects["DaemonSet nvidia-device-plugin"])
    assert SPOT_TOLERATION in plugin["spec"]["tolerations"]
    stack = yaml.safe_load(render_stack(spec, database_host="db", artifact_root="wasbs://x"))
    assert SPOT_TOLERATION in stack["server"]["kubernetes"]["tolerations"]


def test_without_a_spot_pool_nothing_tolerates_spot(mocks: RecordingMocks) -> None:
    spec = spec_for("aws")  # spot on AWS: no taint
    stack = yaml.safe_load(render_stack(spec, database_host="db", artifact_root="s3://x"))
    assert stack["server"]["kubernetes"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
