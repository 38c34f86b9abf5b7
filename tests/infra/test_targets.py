"""Each target under Pulumi's mocks: the resources it declares, their security properties,
the GPU node pools, and the services on the cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlstack_infra.policies import Declared, violations
from mlstack_infra.spec import parse_spec

from tests.infra.conftest import RecordingMocks, run_program

GPU_POOLS = [
    {"name": "system", "machine_type": "MACHINE", "min_size": 1, "max_size": 3},
    {
        "name": "gpu",
        "machine_type": "GPU_MACHINE",
        "gpu_type": "GPU_TYPE",
        "gpu_count": 1,
        "min_size": 0,
        "max_size": 4,
        "spot": True,
        "labels": {"team": "ml"},
    },
]

TARGETS: dict[str, dict[str, Any]] = {
    "aws": {
        "region": "us-east-1",
        "machine": "m6i.xlarge",
        "gpu_machine": "g5.xlarge",
        "gpu": "nvidia-a10g",
    },
    "gcp": {
        "region": "europe-west4",
        "machine": "n2-standard-8",
        "gpu_machine": "g2-standard-8",
        "gpu": "nvidia-l4",
        "project": "acme-ml",
    },
    "azure": {
        "region": "westeurope",
        "machine": "Standard_D8s_v5",
        "gpu_machine": "Standard_NC4as_T4_v3",
        "gpu": "nvidia-t4",
    },
}


def spec_for(target: str, **extra: Any) -> Any:
    facts = TARGETS[target]
    pools = json.loads(
        json.dumps(GPU_POOLS)
        .replace("GPU_MACHINE", facts["gpu_machine"])
        .replace("MACHINE", facts["machine"])
        .replace("GPU_TYPE", facts["gpu"])
    )
    data: dict[str, Any] = {
        "target": target,
        "region": facts["region"],
        "node_pools": pools,
        "services": {"monitoring": [{"model": "churn", "schedule": "*/10 * * * *"}]},
        **extra,
    }
    if "project" in facts:
        data["project"] = facts["project"]
    return parse_spec(data)


def declare(mocks: RecordingMocks, spec: Any) -> list[Declared]:
    from mlstack_infra.program import build

    run_program(lambda: build(spec))
    return mocks.resources


def of(resources: list[Declared], type_: str) -> list[Declared]:
    return [r for r in resources if r.type == type_]


def services_group(resources: list[Declared]) -> list[Declared]:
    """The ConfigGroup of the mlstack services (the Gateway's is another)."""
    groups = of(resources, "kubernetes:yaml/v2:ConfigGroup")
    return [g for g in groups if g.name.endswith("-services")]


@pytest.mark.parametrize("target", ["aws", "gcp", "azure"])
def test_every_cloud_is_secure_by_default(mocks: RecordingMocks, target: str) -> None:
    resources = declare(mocks, spec_for(target))
    assert violations(resources) == {}
    services = services_group(resources)
    assert len(services) == 1  # the mlstack services, applied on the new cluster
    assert of(resources, "kubernetes:core/v1:Secret")


def test_aws_gpu_pool_uses_the_nvidia_ami_with_taint_labels_and_spot(mocks: RecordingMocks) -> None:
    resources = declare(mocks, spec_for("aws"))
    pools = {r.name: r.inputs for r in of(resources, "aws:eks/nodeGroup:NodeGroup")}
    gpu, system = pools["mlstack-gpu"], pools["mlstack-system"]
    assert (
        gpu["amiType"] == "AL2023_x86_64_NVIDIA" and system["amiType"] == "AL2023_x86_64_STANDARD"
    )
    assert gpu["capacityType"] == "SPOT" and gpu["instanceTypes"] == ["g5.xlarge"]
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in gpu["taints"]
    assert gpu["labels"]["mlstack.io/gpu"] == "true" and gpu["labels"]["team"] == "ml"
    assert gpu["scalingConfig"] == {"desiredSize": 0, "minSize": 0, "maxSize": 4}
    assert not system.get("taints")
    [cluster] = of(resources, "aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    # nodes scale: the cluster-autoscaler (through IRSA) finds the node groups; pods scale:
    # the metrics-server add-on feeds the endpoints' HPAs
    assert {a.inputs["addonName"] for a in of(resources, "aws:eks/addon:Addon")} == {
        "metrics-server",
        "vpc-cni",  # configured to enforce NetworkPolicy (test_network_policies.py)
    }
    [group] = services_group(resources)
    [scaler] = [
        o
        for o in group.inputs["objs"]
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "cluster-autoscaler"
    ]
    command = scaler["spec"]["template"]["spec"]["containers"][0]["command"]
    assert any("k8s.io/cluster-autoscaler/mlstack" in c for c in command)
    [account] = [
        o
        for o in group.inputs["objs"]
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "cluster-autoscaler"
    ]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    [database] = of(resources, "aws:rds/instance:Instance")
    assert database.inputs["publiclyAccessible"] is False and database.inputs["storageEncrypted"]
    # IRSA, not keys: the services' role trusts the cluster's OIDC provider for one account
    roles = [json.loads(r.inputs["assumeRolePolicy"]) for r in of(resources, "aws:iam/role:Role")]
    web = [
        s for r in roles for s in r["Statement"] if s["Action"] == "sts:AssumeRoleWithWebIdentity"
    ]
    assert web and "system:serviceaccount:mlstack:mlstack" in json.dumps(web)


def test_aws_database_admits_postgresql_from_the_eks_cluster_security_group_only(
    mocks: RecordingMocks,
) -> None:
    resources = declare(mocks, spec_for("aws"))
    [group] = of(resources, "aws:ec2/securityGroup:SecurityGroup")
    [rule] = group.inputs["ingress"]
    # the cluster's own security group (conftest's mock answers `sg-eks-cluster` for it),
    # which EKS attaches to the managed node groups' nodes; no address range at all
    assert rule["securityGroups"] == ["sg-eks-cluster"]
    assert not rule.get("cidrBlocks")
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 5432, 5432)
    [database] = of(resources, "aws:rds/instance:Instance")
    assert database.inputs["vpcSecurityGroupIds"] == [f"{group.name}-id"]


def test_gcp_gpu_pool_has_accelerators_and_the_driver_installed(mocks: RecordingMocks) -> None:
    resources = declare(mocks, spec_for("gcp"))
    pools = {r.name: r.inputs for r in of(resources, "gcp:container/nodePool:NodePool")}
    config = pools["mlstack-gpu"]["nodeConfig"]
    [accelerator] = config["guestAccelerators"]
    assert accelerator["type"] == "nvidia-l4" and accelerator["count"] == 1
    assert accelerator["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST"
    assert config["spot"] is True
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in config[
        "taints"
    ]
    assert config["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
    [cluster] = of(resources, "gcp:container/cluster:Cluster")
    assert cluster.inputs["workloadIdentityConfig"]["workloadPool"] == "acme-ml.svc.id.goog"
    assert cluster.inputs["privateClusterConfig"]["enablePrivateEndpoint"] is True
    [sql] = of(resources, "gcp:sql/databaseInstance:DatabaseInstance")
    assert sql.inputs["settings"]["ipConfiguration"]["ipv4Enabled"] is False


def test_azure_gpu_pool_is_a_user_pool_with_the_gpu_taint(mocks: RecordingMocks) -> None:
    resources = declare(mocks, spec_for("azure"))
    [pool] = of(resources, "azure-native:containerservice:AgentPool")
    assert pool.inputs["vmSize"] == "Standard_NC4as_T4_v3" and pool.inputs["mode"] == "User"
    assert "nvidia.com/gpu=present:NoSchedule" in pool.inputs["nodeTaints"]
    assert pool.inputs["scaleSetPriority"] == "Spot"
    [cluster] = of(resources, "azure-native:containerservice:ManagedCluster")
    assert cluster.inputs["securityProfile"]["workloadIdentity"]["enabled"] is True
    assert cluster.inputs["apiServerAccessProfile"]["enablePrivateCluster"] is True
    [credential] = of(resources, "azure-native:managedidentity:FederatedIdentityCredential")
    assert credential.inputs["subject"] == "system:serviceaccount:mlstack:mlstack"


def test_onprem_runs_the_stores_in_the_cluster(mocks: RecordingMocks) -> None:
    import pulumi
    from mlstack_infra.program import build

    spec = parse_spec({"target": "onprem", "region": "dc-1", "node_pools": GPU_POOLS_ONPREM})
    run_program(lambda: build(spec, kubeconfig=pulumi.Output.secret("apiVersion: v1")))
    [group] = services_group(mocks.resources)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in group.inputs["objs"]}
    assert {
        ("StatefulSet", "postgres"),
        ("StatefulSet", "minio"),
        ("Deployment", "mlflow"),
    } <= kinds
    minio = [r for r in of(mocks.resources, "kubernetes:core/v1:Secret") if "minio" in r.name]
    assert minio


GPU_POOLS_ONPREM = [
    {
        "name": "gpu",
        "machine_type": "existing",
        "gpu_type": "nvidia-a100",
        "gpu_count": 8,
        "max_size": 2,
    }
]


def test_an_api_endpoint_open_to_the_world_is_refused_in_the_spec() -> None:
    with pytest.raises(ValueError, match=r"0\.0\.0\.0/0 opens the Kubernetes API"):
        spec_for("aws", api_access_cidrs=["0.0.0.0/0"])


def _databases_created_by_the_job(objects: list[dict[str, Any]]) -> set[str]:
    """The databases the `mlstack-databases` Job's script creates (none without the Job)."""
    from mlstack_infra.manifests import DATABASES, create_databases_script

    jobs = [
        o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "mlstack-databases"
    ]
    if not jobs:
        return set()
    [job] = jobs
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "-c", create_databases_script()]
    return set(DATABASES)


@pytest.mark.parametrize("target", ["aws", "gcp", "azure", "onprem"])
def test_every_target_creates_the_mlflow_feast_and_mlstack_databases(
    mocks: RecordingMocks, target: str
) -> None:
    import pulumi
    from mlstack_infra.program import build

    if target == "onprem":
        spec = parse_spec({"target": "onprem", "region": "dc-1", "node_pools": GPU_POOLS_ONPREM})
        run_program(lambda: build(spec, kubeconfig=pulumi.Output.secret("apiVersion: v1")))
    else:
        declare(mocks, spec_for(target))
    [group] = services_group(mocks.resources)
    by_job = _databases_created_by_the_job(group.inputs["objs"])
    by_cloud = {r.inputs["name"] for r in of(mocks.resources, "gcp:sql/database:Database")} | {
        r.inputs["databaseName"]
        for r in of(mocks.resources, "azure-native:dbforpostgresql:Database")
    }
    assert by_job | by_cloud == {"mlflow", "feast", "mlstack"}
    assert not (by_job and by_cloud)  # one way per target


@pytest.mark.parametrize(
    ("target", "egress", "expected"),
    [
        ("aws", "nat", {"nat_gateways": 1, "default_routes": ("internet_gateway", "nat_gateway")}),
        ("aws", "none", {"nat_gateways": 0, "default_routes": ()}),
        ("gcp", "nat", {"cloud_nat": ("ALL_SUBNETWORKS_ALL_IP_RANGES",)}),
        ("gcp", "none", {"cloud_nat": ()}),
    ],
)
def test_private_nodes_reach_out_through_nat_unless_egress_is_none(
    mocks: RecordingMocks, target: str, egress: str, expected: dict[str, Any]
) -> None:
    from mlstack_infra.posture import from_pulumi

    resources = declare(mocks, spec_for(target, egress=egress))
    [network] = [i for i in from_pulumi(resources) if i.kind == "network"]
    assert dict(network.settings) == expected
    cluster = next(i for i in from_pulumi(resources) if i.kind == "cluster")
    assert cluster.get("private_nodes") is True
    assert violations(resources) == {}  # no 0.0.0.0/0 ingress: a route is not an opening
