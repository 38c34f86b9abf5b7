"""The rules that make the stack secure by default, seen to fail on resources that break
them; the spec refusing bad values by field before any resource exists; the Kubernetes
manifests valid against the Kubernetes schema; the exported stack.yaml valid for mlstack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlstack_infra import autoscaler
from mlstack_infra.gateway import objects as gateway_objects
from mlstack_infra.manifests import Endpoints, render
from mlstack_infra.onprem import in_cluster_stores
from mlstack_infra.policies import Declared, violations
from mlstack_infra.spec import SpecError, parse_spec
from mlstack_infra.stack_output import render_stack

from tests.infra.conftest import ROOT, RecordingMocks, run_program

POOLS = [
    {"name": "system", "machine_type": "m6i.xlarge"},
    {
        "name": "gpu",
        "machine_type": "g5.xlarge",
        "gpu_type": "nvidia-a10g",
        "gpu_count": 1,
        "max_size": 2,
    },
]


def test_each_rule_fails_on_what_it_forbids() -> None:
    bad = [
        Declared("aws:s3/bucket:Bucket", "open", {}),
        Declared(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "half",
            {"blockPublicAcls": True},
        ),
        Declared("gcp:storage/bucket:Bucket", "gcs", {"publicAccessPrevention": "inherited"}),
        Declared(
            "aws:rds/instance:Instance",
            "db",
            {"publiclyAccessible": True, "storageEncrypted": False},
        ),
        Declared(
            "gcp:sql/databaseInstance:DatabaseInstance",
            "sql",
            {"settings": {"ipConfiguration": {"ipv4Enabled": True}}},
        ),
        Declared(
            "aws:ec2/securityGroup:SecurityGroup",
            "sg",
            {"ingress": [{"cidrBlocks": ["0.0.0.0/0"]}]},
        ),
        Declared("aws:eks/cluster:Cluster", "eks", {"vpcConfig": {"endpointPublicAccess": True}}),
        Declared("gcp:container/cluster:Cluster", "gke", {"privateClusterConfig": {}}),
        Declared("aws:iam/accessKey:AccessKey", "key", {}),
        Declared("azure-native:storage:StorageAccount", "acct", {"allowBlobPublicAccess": True}),
        Declared(
            "kubernetes:yaml/v2:ConfigGroup",
            "svc",
            {
                "objs": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": "mlflow"},
                        "spec": {"type": "LoadBalancer"},
                    }
                ]
            },
        ),
    ]
    found = violations(bad)
    assert set(found) == {
        "buckets_are_private",
        "storage_is_encrypted",
        "databases_are_private",
        "databases_admit_the_cluster_only",
        "no_open_ingress",
        "cluster_endpoint_is_private",
        "no_static_keys",
        "network_policies_are_enforced",  # neither cluster says it enforces them
    }
    assert "service mlflow is a public load balancer" in found["no_open_ingress"]
    assert any("0.0.0.0/0" in v for v in found["no_open_ingress"])
    assert found["databases_admit_the_cluster_only"] == [
        "security group database admits addresses (0.0.0.0/0), not only the cluster's "
        "security group"
    ]


def test_only_the_serving_gateway_may_be_public_and_only_when_asked() -> None:
    def gateway(public: bool) -> list[Declared]:
        spec = parse_spec(
            {"target": "aws", "region": "us-east-1", "node_pools": POOLS, "serving_public": public}
        )
        objs = render(spec, Endpoints("s3://b/mlflow", "db")) + gateway_objects(spec)
        return [Declared("kubernetes:yaml/v2:ConfigGroup", "services", {"objs": objs})]

    public = gateway(True)
    assert violations(public, serving_public=True) == {}
    assert "no_open_ingress" in violations(public, serving_public=False)
    assert violations(gateway(False)) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"node_pools": [{"name": "gpu", "machine_type": "g5.xlarge", "gpu_count": 2}]},
            "mlstack:spec: node_pools[0]: gpu_count is set but gpu_type is not",
        ),
        (
            {"region": "Frankfurt"},
            "mlstack:spec: region: 'Frankfurt' is not a aws region (like 'us-east-1')",
        ),
        (
            {
                "node_pools": [
                    {"name": "cpu", "machine_type": "m5.large", "min_size": 5, "max_size": 2}
                ]
            },
            "mlstack:spec: node_pools[0]: min_size 5 is larger than max_size 2",
        ),
        (
            {"node_pools": [{"name": "cpu", "machine_type": "m5.large", "min_size": -1}]},
            "mlstack:spec: node_pools[0].min_size: Input should be greater than or equal to 0",
        ),
        (
            {"target": "gcp", "region": "europe-west4"},
            "mlstack:spec: project: target gcp needs `project`",
        ),
        (
            {"api_access_cidrs": ["10.0.0.0/8", "10.0.0.0/33"]},
            "mlstack:spec: api_access_cidrs[1]: '10.0.0.0/33' is not an IPv4 CIDR",
        ),
        (
            {"api_access_cidrs": ["10.0.0.1/8"]},
            "mlstack:spec: api_access_cidrs[0]: '10.0.0.1/8' is not an IPv4 CIDR (10.0.0.1/8 "
            "has host bits set)",
        ),
        (
            {"api_access_cidrs": ["0.0.0.0/0"]},
            "mlstack:spec: api_access_cidrs[0]: 0.0.0.0/0 opens the Kubernetes API to all",
        ),
        (
            {"services": {"monitoring": [{"model": "churn", "schedule": "every 15 minutes"}]}},
            "mlstack:spec: services.monitoring[0].schedule: 'every 15 minutes' is not a cron "
            "expression",
        ),
        (
            {"services": {"monitoring": [{"model": "churn", "schedule": "*/15 * * *"}]}},
            "mlstack:spec: services.monitoring[0].schedule: '*/15 * * *' is not a cron",
        ),
        (
            {"node_pools": [POOLS[0], {**POOLS[1], "machine_type": "n2-standard-8"}]},
            "mlstack:spec: node_pools[1].machine_type: 'n2-standard-8' is not a aws machine "
            "type (like 'm6i.xlarge')",
        ),
        (
            {
                "target": "gcp",
                "region": "europe-west4",
                "project": "acme",
                "node_pools": [{"name": "cpu", "machine_type": "m6i.xlarge"}],
            },
            "mlstack:spec: node_pools[0].machine_type: 'm6i.xlarge' is not a gcp machine type",
        ),
        (
            {
                "target": "azure",
                "region": "westeurope",
                "node_pools": [{"name": "cpu", "machine_type": "n2-standard-8"}],
            },
            "mlstack:spec: node_pools[0].machine_type: 'n2-standard-8' is not a azure machine",
        ),
        (
            {
                "target": "gcp",
                "region": "europe-west4",
                "project": "acme",
                "node_pools": [
                    {"name": "cpu", "machine_type": "n2-standard-8"},
                    {
                        "name": "gpu",
                        "machine_type": "g2-standard-8",
                        "gpu_type": "nvidia-a10g",
                        "gpu_count": 1,
                    },
                ],
            },
            "mlstack:spec: node_pools[1].gpu_type: 'nvidia-a10g' is not a GKE accelerator type",
        ),
        (
            {"node_pools": [POOLS[0], {**POOLS[1], "gpu_type": "A10G!"}]},
            "mlstack:spec: node_pools[1].gpu_type: 'A10G!' is not a GPU type",
        ),
        (
            {"image": "ghcr.io/acme/mlstack:0.1 beta"},
            "mlstack:spec: image: 'ghcr.io/acme/mlstack:0.1 beta' is not an image reference",
        ),
        (
            {"mlflow_image": "https://ghcr.io/mlflow/mlflow"},
            "mlstack:spec: mlflow_image: 'https://ghcr.io/mlflow/mlflow' is not an image",
        ),
        (
            {"installer_image": "docker.io/alpine/k8s"},
            "mlstack:spec: installer_image: 'docker.io/alpine/k8s' has no tag or digest",
        ),
        (
            {"installer_image": "mirror.example:5000/alpine/k8s"},  # a port is not a tag
            "mlstack:spec: installer_image: 'mirror.example:5000/alpine/k8s' has no tag",
        ),
        (
            {"installer_image": "alpine/k8s:latest"},
            "mlstack:spec: installer_image: 'alpine/k8s:latest' is tagged 'latest', which moves",
        ),
        (
            {"installer_image": "alpine/k8s:1.33.4 "},
            "mlstack:spec: installer_image: 'alpine/k8s:1.33.4 ' is not an image reference",
        ),
    ],
)
def test_a_bad_spec_names_the_field(change: dict[str, Any], message: str) -> None:
    data = {"target": "aws", "region": "us-east-1", "node_pools": POOLS, **change}
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    assert message in str(caught.value)


def test_a_bad_spec_stops_the_program_before_any_resource(mocks: RecordingMocks) -> None:
    import pulumi
    from mlstack_infra.program import main

    spec = {
        "target": "aws",
        "region": "us-east-1",
        "node_pools": [{"name": "gpu", "machine_type": "g5", "gpu_count": 1}],
    }
    pulumi.runtime.set_all_config({"mlstack:spec": json.dumps(spec)})
    try:
        with pytest.raises(
            SpecError, match=r"node_pools\[0\]: gpu_count is set but gpu_type is not"
        ):
            run_program(main)
    finally:
        pulumi.runtime.set_all_config({})
    assert mocks.resources == []


@pytest.mark.parametrize("target", ["aws", "gcp", "azure", "onprem"])
def test_the_kubernetes_manifests_are_valid(target: str, tmp_path: Path) -> None:
    region = {"aws": "us-east-1", "gcp": "europe-west4", "azure": "westeurope", "onprem": "dc-1"}[
        target
    ]
    system, gpu = {
        "aws": ("m6i.xlarge", "g5.xlarge"),
        "gcp": ("n2-standard-8", "g2-standard-8"),
        "azure": ("Standard_D8s_v5", "Standard_NC4as_T4_v3"),
        "onprem": ("cpu", "dgx"),
    }[target]
    pools = [
        {**POOLS[0], "machine_type": system},
        {**POOLS[1], "machine_type": gpu, "gpu_type": "nvidia-l4"},
    ]
    spec = parse_spec(
        {
            "target": target,
            "region": region,
            "project": "p" if target == "gcp" else None,
            "node_pools": pools,
            "serving_public": True,
            "services": {
                "monitoring": [{"model": "churn"}, {"model": "fraud.v2", "schedule": "0 * * * *"}]
            },
        }
    )
    endpoints = Endpoints(
        "s3://b/mlflow",
        "db.internal",
        service_account_annotations={"eks.amazonaws.com/role-arn": "arn:x"},
    )
    objects = render(spec, endpoints)
    if target == "onprem":
        objects += in_cluster_stores(spec)
    if target == "aws":
        objects += autoscaler.manifests("mlstack", "us-east-1", "arn:aws:iam::1:role/autoscaler")
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    checked = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "--quiet",
            "--kubernetes-version",
            "1.33",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    kinds = {o["kind"] for o in objects}
    assert {
        "Deployment",
        "Service",
        "CronJob",
        "DaemonSet",
        "NetworkPolicy",
        "PriorityClass",
    } <= kinds
    [serving] = [
        o
        for o in objects
        if o["kind"] == "Namespace" and o["metadata"]["name"] == "mlstack-serving"
    ]
    tolerations = json.loads(
        serving["metadata"]["annotations"]["scheduler.alpha.kubernetes.io/defaultTolerations"]
    )
    assert tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    mlflow = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlflow"
    )
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "postgresql://$(DB_USER):$(DB_PASSWORD)@db.internal:5432/mlflow" in args
    assert args[args.index("--artifacts-destination") + 1] == "s3://b/mlflow"


def test_the_exported_stack_file_is_a_valid_mlstack_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stack.config.stack_file import read_stack_file
    from stack.plugins.registry import default_registry
    from stack.resolution import resolve_stack

    pools = [
        {"name": "system", "machine_type": "n2-standard-8"},
        {**POOLS[1], "machine_type": "g2-standard-8", "gpu_type": "nvidia-l4"},
    ]
    spec = parse_spec(
        {"target": "gcp", "region": "europe-west4", "project": "p", "node_pools": pools}
    )
    text = render_stack(spec, database_host="10.80.0.3", artifact_root="gs://b/mlflow")
    assert "generated-password" not in text and "${MLSTACK_DB_PASSWORD}" in text
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    monkeypatch.setenv("MLSTACK_DB_PASSWORD", "s3cret")
    stack, doc = read_stack_file(path)
    roles = resolve_stack(stack, doc, default_registry(), None)
    assert {r.value for r in roles} >= {
        "tracker",
        "registry",
        "server",
        "monitor",
        "orchestrator",
        "features",
    }
    assert stack.spine.password is not None and stack.spine.password.get_secret_value() == "s3cret"
    assert "s3cret" not in stack.spine.safe_url
    assert os.environ["MLSTACK_DB_PASSWORD"] == "s3cret"
    server = roles[next(r for r in roles if r.value == "server")].config
    kubernetes = server.kubernetes  # type: ignore[attr-defined]
    # endpoints run on CPU nodes unless one asks for a GPU: then on the GPU pools
    assert kubernetes.gpus == 0 and kubernetes.node_selector == {}
    assert kubernetes.for_endpoint("llm").gpu_node_selector == {"mlstack.io/gpu": "true"}
    assert "endpoints: {NAME: {gpus: 1}}" in text


def test_the_example_stacks_are_valid_specs() -> None:
    paths = sorted((ROOT / "infra" / "pulumi").glob("Pulumi.*.yaml"))
    assert [p.name for p in paths] == [
        "Pulumi.aws-gpu.yaml",
        "Pulumi.azure-gpu.yaml",
        "Pulumi.gcp-gpu.yaml",
        "Pulumi.onprem.yaml",
    ]
    for path in paths:
        config = yaml.safe_load(path.read_text())["config"]
        spec = parse_spec(config["mlstack:spec"], where=path.name)
        assert spec.gpu_pools, f"{path.name} has no GPU pool"


def test_the_spec_in_the_docs_is_a_valid_spec() -> None:
    text = (ROOT / "docs" / "infra.md").read_text()
    [block] = [b for b in text.split("```yaml\n")[1:] if b.startswith("mlstack:spec:")]
    parse_spec(yaml.safe_load(block.split("```", 1)[0])["mlstack:spec"], where="docs/infra.md")


def test_kubeconfigs_get_short_lived_tokens_from_the_clouds_cli() -> None:
    from mlstack_infra.common import exec_kubeconfig

    eks = json.loads(
        exec_kubeconfig(
            server="https://x",
            ca="Q0E=",
            cluster="c",
            command="aws",
            args=["eks", "get-token", "--cluster-name", "c"],
        )
    )
    user = eks["users"][0]["user"]
    assert user["exec"]["command"] == "aws" and "token" not in user
    gke = json.loads(
        exec_kubeconfig(
            server="https://y", ca="Q0E=", cluster="g", command="gke-gcloud-auth-plugin"
        )
    )
    assert gke["users"][0]["user"]["exec"]["provideClusterInfo"] is True
    assert gke["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="


def test_the_databases_job_creates_each_missing_database_once(postgres_server: Any) -> None:
    """The script of the `mlstack-databases` Job, run twice with psql on a real PostgreSQL:
    the first run creates the missing databases, the second changes nothing and succeeds."""
    import uuid

    import sqlalchemy as sa
    from mlstack_infra.manifests import create_databases_script

    url = sa.engine.make_url(postgres_server.admin_url)
    names = tuple(f"mlstack_init_{uuid.uuid4().hex[:8]}_{n}" for n in ("mlflow", "feast"))
    env = {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGPASSWORD": url.password or "",
        "PGDATABASE": "postgres",
    }
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {names[0]}")  # one already there
        for _ in range(2):
            done = subprocess.run(
                ["sh", "-c", create_databases_script(names)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
        with admin.connect() as connection:
            found = {
                row[0] for row in connection.exec_driver_sql("SELECT datname FROM pg_database")
            }
        assert set(names) <= found
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def test_feast_reads_its_registry_url_with_the_database_credentials(tmp_path: Path) -> None:
    """The rendered feature server, its env expanded as Kubernetes does (`$(VAR)` in env
    values, secrets resolved), loaded by Feast's own reader of feature_store.yaml: the
    registry URL holds the credentials, not `$(DB_USER)`."""
    import re

    from feast.repo_config import load_repo_config

    spec = parse_spec({"target": "aws", "region": "us-east-1", "node_pools": POOLS})
    objects = render(spec, Endpoints("s3://b/mlflow", "db.internal"))
    [config] = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "feast-repo"
    ]
    [server] = [
        o
        for o in objects
        if o["metadata"]["name"] == "feature-server" and o["kind"] == "Deployment"
    ]
    [container] = server["spec"]["template"]["spec"]["containers"]
    secret = {"username": "mlstack", "password": "s3cret"}
    env: dict[str, str] = {}
    for item in container["env"]:  # Kubernetes: earlier variables only, in order
        if "valueFrom" in item:
            env[item["name"]] = secret[item["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[item["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                item["value"],
            )
    (tmp_path / "feature_store.yaml").write_text(config["data"]["feature_store.yaml"])
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        loaded = load_repo_config(tmp_path, tmp_path / "feature_store.yaml")
    assert loaded.registry.path.startswith("postgresql")  # Feast names its driver: +psycopg
    assert loaded.registry.path.endswith("://mlstack:s3cret@db.internal:5432/feast")
