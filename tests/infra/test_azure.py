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
from tests.infra.test_targets import declare, of, services_group, spec_for
from tests.infra.test_terraform import resources, synthesized

SPOT = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"
SPOT_TOLERATION = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def services(declared: list[Declared]) -> dict[str, dict[str, Any]]:
    [group] = services_group(declared)
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
    # what the pods that request a GPU tolerate (CPU pods tolerate none of it)
    assert SPOT_TOLERATION in stack["server"]["kubernetes"]["gpu_tolerations"]
    assert "tolerations" not in stack["server"]["kubernetes"]


def test_without_a_spot_pool_nothing_tolerates_spot(mocks: RecordingMocks) -> None:
    spec = spec_for("aws")  # spot on AWS: no taint
    stack = yaml.safe_load(render_stack(spec, database_host="db", artifact_root="s3://x"))
    assert stack["server"]["kubernetes"]["gpu_tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_the_database_sits_in_a_delegated_subnet_with_a_linked_private_zone(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    declared = declare(mocks, spec_for("azure"))
    [server] = of(declared, "azure-native:dbforpostgresql:Server")
    network = server.inputs["network"]
    assert network["publicNetworkAccess"] == "Disabled"
    assert network["delegatedSubnetResourceId"] == "mlstack-database-subnet-id"
    assert network["privateDnsZoneArmResourceId"] == "mlstack-database-zone-id"
    [subnet] = [
        s for s in of(declared, "azure-native:network:Subnet") if s.inputs.get("delegations")
    ]
    assert subnet.inputs["delegations"] == [
        {"name": "postgres", "serviceName": "Microsoft.DBforPostgreSQL/flexibleServers"}
    ]
    [zone] = of(declared, "azure-native:privatedns:PrivateZone")
    assert zone.inputs["privateZoneName"] == "mlstack.private.postgres.database.azure.com"
    [link] = of(declared, "azure-native:privatedns:VirtualNetworkLink")
    assert link.inputs["virtualNetwork"] == {"id": "mlstack-vnet-id"}
    pools = of(declared, "azure-native:containerservice:AgentPool")
    assert {p.inputs["vnetSubnetID"] for p in pools} == {"mlstack-nodes-id"}

    config = synthesized(terraform_out, "azure")
    [db] = resources(config, "azurerm_postgresql_flexible_server").values()
    assert db["public_network_access_enabled"] is False
    assert db["delegated_subnet_id"] == "${azurerm_subnet.mlstack-database-subnet.id}"
    assert db["private_dns_zone_id"] == "${azurerm_private_dns_zone.mlstack-database-zone.id}"
    assert (
        "azurerm_private_dns_zone_virtual_network_link.mlstack-database-zone-link"
        in db["depends_on"]
    )
    subnet_tf = resources(config, "azurerm_subnet")["mlstack-database-subnet"]
    [delegation] = subnet_tf["delegation"]
    assert delegation["service_delegation"]["name"] == "Microsoft.DBforPostgreSQL/flexibleServers"
    [zone_tf] = resources(config, "azurerm_private_dns_zone").values()
    assert zone_tf["name"] == "mlstack.private.postgres.database.azure.com"
    [link_tf] = resources(config, "azurerm_private_dns_zone_virtual_network_link").values()
    assert link_tf["virtual_network_id"] == "${azurerm_virtual_network.mlstack-vnet.id}"
    [cluster] = resources(config, "azurerm_kubernetes_cluster").values()
    assert cluster["default_node_pool"]["vnet_subnet_id"] == "${azurerm_subnet.mlstack-nodes.id}"


def test_a_private_database_in_no_network_is_refused_by_the_rules() -> None:
    from mlstack_infra.policies import violations

    server = Declared(
        "azure-native:dbforpostgresql:Server",
        "db",
        {"network": {"publicNetworkAccess": "Disabled"}},
    )
    assert violations([server]) == {
        "databases_are_reachable": [
            "database database is neither public nor in a private network: nothing reaches it"
        ]
    }


def test_the_storage_account_name_is_derived_valid_and_overridable(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    import re

    from mlstack_infra.cloud import azure_storage_account

    names = {
        azure_storage_account(spec_for("azure", name=name, region=region))
        for name in ("mlstack", "ml-stack-with-a-long-name", "ab")
        for region in ("westeurope", "eastus")
    }
    assert len(names) == 6 and all(re.fullmatch(r"[a-z0-9]{3,24}", n) for n in names)
    assert azure_storage_account(spec_for("azure")) == azure_storage_account(spec_for("azure"))
    [account] = of(declare(mocks, spec_for("azure")), "azure-native:storage:StorageAccount")
    assert account.inputs["accountName"] == azure_storage_account(spec_for("azure"))
    assert account.inputs["allowSharedKeyAccess"] is False
    [account_tf] = resources(
        synthesized(terraform_out, "azure"), "azurerm_storage_account"
    ).values()
    assert account_tf["name"] == account.inputs["accountName"]
    assert account_tf["shared_access_key_enabled"] is False
    assert azure_storage_account(spec_for("azure", storage_account="acmeml01")) == "acmeml01"


def test_a_storage_account_name_azure_refuses_is_refused_in_the_spec() -> None:
    import pytest
    from mlstack_infra.spec import SpecError

    with pytest.raises(SpecError, match="storage_account: String should match pattern"):
        spec_for("azure", storage_account="Acme-ML")
