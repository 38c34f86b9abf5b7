"""Who may deploy to the cluster the infra program builds, and what the endpoints' pods get:
the `mlstack-deployer` Role grants exactly the requests the cluster router sends (found by
running the router against a Kubernetes API on 127.0.0.1, so the two cannot drift), bound
to the deployers' group, the in-cluster ServiceAccount and each cloud's principals; the
`prediction-log` Secret holds the database's URL by reference; the pods the router renders
from the stack file the program writes run at the serving PriorityClass and tolerate every
taint of the GPU pools, Azure spot's included."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlstack_infra import access
from mlstack_infra.manifests import NAMESPACE, SERVING, SERVING_PRIORITY, Endpoints, render
from mlstack_infra.program import build
from mlstack_infra.spec import AZURE_SPOT_TAINT, SpecError, parse_spec
from mlstack_infra.stack_output import render_stack

from tests.infra.conftest import RecordingMocks, run_program
from tests.infra.test_targets import spec_for
from tests.support.fake_kube import FakeCluster, fake_cluster

ARN = "arn:aws:iam::123456789012:role/ml-deployers"

#: HTTP method of a request the router sends, and whether it names one object → RBAC verbs.
VERBS = {
    ("GET", True): {"get"},
    ("GET", False): {"list"},
    ("POST", False): {"create"},
    ("PUT", True): {"update"},
    ("DELETE", True): {"delete"},
    # server-side apply: a PATCH the API server also authorizes as `create` when the
    # object is absent
    ("PATCH", True): {"patch", "create"},
}


def _rights(path: str, method: str) -> set[tuple[str, str, str]]:
    """(group, resource, verb) a request needs; none for discovery (every user's)."""
    parts = path.strip("/").split("/")
    if "namespaces" not in parts:
        return set()
    group = "" if parts[0] == "api" else parts[1]
    at = parts.index("namespaces")
    assert parts[at + 1] == SERVING, f"{method} {path} leaves the serving namespace"
    resource, named = parts[at + 2], len(parts) > at + 3
    return {(group, resource, verb) for verb in VERBS[(method, named)]}


def _drive_router(cluster: FakeCluster, folder: Path, **kubernetes: Any) -> None:
    """Every call of the cluster router: hold, deploy, add a version, a canary split, the
    health read, promotion (the old version removed), the endpoints, undeploy."""
    from stack.contract.registry import ModelVersion
    from stack.contract.serving import TrafficSplit
    from stack.contract.states import LifecycleState
    from stack_bentoml.cluster import ClusterRouter
    from stack_bentoml.config import BentoConfig
    from stack_bentoml.kubeapi import KubeApi

    config = BentoConfig.model_validate(
        {"kubernetes": {"namespace": SERVING, "poll_seconds": 0.01, **kubernetes}}
    )
    cluster.gateway(SERVING, "mlstack-gateway", "10.0.0.9")  # infra's, in the serving namespace
    api = KubeApi.connect(str(cluster.kubeconfig(folder)))
    router = ClusterRouter(config, api, folder / "predictions")
    one, two = (ModelVersion("churn", n, LifecycleState.APPROVED, "runs:/r/model") for n in (1, 2))
    with router.hold("churn"):
        router.deploy(one, endpoint="churn")
        router.add_version(two, endpoint="churn")
        router.route("churn", TrafficSplit({one.ref: 0.9, two.ref: 0.1}))
        router.health("churn")
        router.route("churn", TrafficSplit({two.ref: 1.0}))
    router.endpoints()
    router.undeploy("churn")


@pytest.fixture(scope="module")
def router_rights(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str, str]]:
    pytest.importorskip("kubernetes", reason="the router's client (the kubernetes extra)")
    needed: set[tuple[str, str, str]] = set()
    for kubernetes in ({}, {"keda": {"prometheus": "http://prometheus:9090"}}):
        with fake_cluster() as cluster:
            _drive_router(cluster, tmp_path_factory.mktemp("router"), **kubernetes)
            for request in cluster.requests:
                needed |= _rights(request.path, request.method)
    return needed


def _role(spec_objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [
        o for o in spec_objects if o["kind"] == kind and o["metadata"]["name"] == "mlstack-deployer"
    ]
    assert len(found) == 1
    return found[0]


def test_the_deployer_role_grants_exactly_what_the_router_sends(
    router_rights: set[tuple[str, str, str]],
) -> None:
    role = _role(render(spec_for("aws"), Endpoints("s3://b/mlflow", "db")), "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert role["metadata"]["namespace"] == SERVING
    assert granted == router_rights
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in role["rules"])


def test_deployers_may_port_forward_to_mlflow_and_do_nothing_else_in_its_namespace() -> None:
    spec = spec_for("aws")
    objects = render(spec, Endpoints("s3://b/mlflow", "db"))
    [role] = [o for o in objects if o["kind"] == "Role" and o["metadata"]["namespace"] == NAMESPACE]
    [binding] = [
        o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == NAMESPACE
    ]
    # what `kubectl -n mlstack port-forward svc/mlflow 5000:5000` asks for, and no more
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["services"],
            "resourceNames": ["mlflow"],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]},
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == "mlstack-deployer-mlflow"
    assert binding["subjects"] == access.subjects(spec)
    # the Service it names is the one the infra program serves MLflow by
    [service] = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "mlflow"]
    assert service["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("target", ["aws", "gcp", "azure"])
def test_the_role_is_bound_to_the_group_and_the_in_cluster_service_account(target: str) -> None:
    objects = render(spec_for(target), Endpoints("s3://b/mlflow", "db"))
    binding = _role(objects, "RoleBinding")
    account = _role(objects, "ServiceAccount")
    assert binding["metadata"]["namespace"] == SERVING
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "mlstack-deployer",
    }
    assert binding["subjects"][:2] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "mlstack-deployers"},
        {"kind": "ServiceAccount", "name": "mlstack-deployer", "namespace": NAMESPACE},
    ]
    assert account["metadata"]["namespace"] == NAMESPACE


def _with(target: str, **changes: Any) -> Any:
    return spec_for(target, **changes)


def test_gke_members_and_entra_groups_are_bound_by_the_names_the_cluster_knows() -> None:
    gke = _with(
        "gcp",
        deployers={
            "gcp_members": ["group:ml@example.com", "serviceAccount:ci@p.iam.gserviceaccount.com"]
        },
    )
    aks = _with("azure", deployers={"azure_groups": ["0F6C0D1B-1111-2222-3333-444455556666"]})
    gke_subjects = access.subjects(gke)[2:]
    aks_subjects = access.subjects(aks)[2:]
    assert [(s["kind"], s["name"]) for s in gke_subjects] == [
        ("Group", "ml@example.com"),
        ("User", "ci@p.iam.gserviceaccount.com"),
    ]
    assert [(s["kind"], s["name"]) for s in aks_subjects] == [
        ("Group", "0f6c0d1b-1111-2222-3333-444455556666")
    ]


def test_a_principal_for_another_cloud_is_refused_naming_the_field() -> None:
    with pytest.raises(SpecError, match=r"deployers.aws_principals: only for target aws.*gcp"):
        _with("gcp", deployers={"aws_principals": [ARN]})
    with pytest.raises(SpecError, match=r"deployers.aws_principals\[0\]: 'ml-deployers' is not"):
        _with("aws", deployers={"aws_principals": ["ml-deployers"]})
    with pytest.raises(
        SpecError, match=r"deployers.group: .system:masters. is a Kubernetes system group"
    ):
        _with("aws", deployers={"group": "system:masters"})


def _declared(mocks: RecordingMocks, typ: str) -> list[Any]:
    return [r for r in mocks.resources if r.type == typ]


def test_each_iam_principal_gets_an_eks_access_entry_in_the_deployers_group(
    mocks: RecordingMocks,
) -> None:
    spec = _with("aws", deployers={"aws_principals": [ARN]})
    run_program(lambda: build(spec))
    entries = _declared(mocks, "aws:eks/accessEntry:AccessEntry")
    assert [(e.inputs["principalArn"], e.inputs["kubernetesGroups"]) for e in entries] == [
        (ARN, ["mlstack-deployers"])
    ]
    assert not _declared(mocks, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")


def test_each_gke_member_may_fetch_credentials_and_no_more(mocks: RecordingMocks) -> None:
    spec = _with("gcp", deployers={"gcp_members": ["group:ml@example.com"]})
    run_program(lambda: build(spec))
    members = _declared(mocks, "gcp:projects/iAMMember:IAMMember")
    viewers = [m.inputs for m in members if m.inputs["role"] == access.GKE_CLUSTER_VIEWER]
    assert [(m["member"], m["project"]) for m in viewers] == [
        ("group:ml@example.com", spec.project)
    ]


def test_the_prediction_log_secret_holds_the_database_url_and_no_output_shows_it(
    mocks: RecordingMocks,
) -> None:
    spec = spec_for("aws")
    run_program(lambda: build(spec))
    secrets = [
        s
        for s in _declared(mocks, "kubernetes:core/v1:Secret")
        if s.inputs["metadata"]["name"] == access.PREDICTION_LOG_SECRET
    ]
    assert len(secrets) == 1
    assert secrets[0].inputs["metadata"]["namespace"] == SERVING
    from pulumi.runtime import rpc

    data = secrets[0].inputs["stringData"]
    assert data[rpc._special_sig_key] == rpc._special_secret_sig  # encrypted in the state
    url = data["value"][access.PREDICTION_LOG_KEY]
    host = (
        next(r.name for r in mocks.resources if r.type == "aws:rds/instance:Instance")
        + ".rds.example"
    )
    assert url == f"postgresql://mlstack:generated-password@{host}:5432/mlstack"
    stack_file = render_stack(spec, database_host=host, artifact_root="s3://b/mlflow")
    assert "generated-password" not in stack_file


def test_urls_quote_a_password_with_url_characters() -> None:
    assert access.prediction_log_url("db", "p@ss/w:rd") == (
        "postgresql://mlstack:p%40ss%2Fw%3Ard@db:5432/mlstack"
    )


def _stack_kubernetes(spec: Any) -> dict[str, Any]:
    text = render_stack(spec, database_host="db.internal", artifact_root="s3://b/mlflow")
    return dict(yaml.safe_load(text)["server"]["kubernetes"])


def test_the_stack_file_points_the_pods_at_the_secret_and_the_priority_class() -> None:
    kubernetes = _stack_kubernetes(spec_for("aws"))
    assert kubernetes["priority_class"] == SERVING_PRIORITY
    assert kubernetes["secrets"] == [
        {"env": "MLSTACK_PREDICTION_LOG_URL", "secret": "prediction-log", "key": "url"}
    ]
    priority = [
        o
        for o in render(spec_for("aws"), Endpoints("s3://b/mlflow", "db"))
        if o["kind"] == "PriorityClass"
    ]
    assert [p["metadata"]["name"] for p in priority] == [SERVING_PRIORITY]


def _azure_spot_gpu() -> Any:
    data = spec_for("azure").model_dump(mode="json")
    data["node_pools"] = [
        data["node_pools"][0],
        {
            "name": "gpuspot",
            "machine_type": "Standard_NC4as_T4_v3",
            "gpu_type": "nvidia-t4",
            "gpu_count": 1,
            "min_size": 0,
            "spot": True,
        },
    ]
    return parse_spec(data)


def test_pods_rendered_from_the_stack_file_tolerate_every_gpu_pool_taint_and_validate(
    tmp_path: Path,
) -> None:
    from stack_bentoml.config import KubernetesTarget
    from stack_bentoml.kubernetes import version_objects
    from tests.adapters.bentoml.test_cluster_router import validate

    kubernetes = _stack_kubernetes(_azure_spot_gpu())
    kubernetes["endpoints"] = {"llm": {"gpus": 1}}  # as the file's header says to
    target = KubernetesTarget.model_validate(kubernetes)
    objects = version_objects(target, "llm", "llm@2")
    pod = objects[0]["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == SERVING_PRIORITY
    tolerated = {(t["key"], t["effect"]) for t in pod["tolerations"]}
    assert tolerated == {
        ("nvidia.com/gpu", "NoSchedule"),
        (AZURE_SPOT_TAINT["key"], AZURE_SPOT_TAINT["effect"]),
    }
    assert pod["nodeSelector"] == {"mlstack.io/gpu": "true"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    checked = validate(objects[:2], tmp_path)  # kubernetes-validate --strict
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # an endpoint that asks for no GPU takes none, and no GPU node's room
    cpu = version_objects(target, "churn", "churn@2")[0]["spec"]["template"]["spec"]
    assert "nodeSelector" not in cpu and "tolerations" not in cpu
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]


def test_no_priority_class_is_named_where_the_stack_says_none() -> None:
    from stack_bentoml.config import KubernetesTarget
    from stack_bentoml.kubernetes import version_objects

    target = KubernetesTarget(priority_class=None)
    pod = version_objects(target, "churn", "churn@2")[0]["spec"]["template"]["spec"]
    assert "priorityClassName" not in pod


def test_the_exported_stack_file_may_name_the_secret_but_not_hold_a_value() -> None:
    from stack.cli.stack_cmd import literal_secrets

    reference = {"env": "MLSTACK_PREDICTION_LOG_URL", "secret": "prediction-log", "key": "url"}
    assert literal_secrets({"server": {"kubernetes": {"secrets": [reference]}}}) == []
    assert literal_secrets({"spine": {"password": "hunter2"}}) == ["spine.password"]


def test_terraform_creates_the_secret_from_the_database_and_applies_the_same_role(
    terraform_out: Path,
) -> None:
    config = json.loads((terraform_out / "aws" / "cdk.tf.json").read_text())
    secrets = config["resource"]["kubernetes_secret_v1"]
    secret = next(
        s for s in secrets.values() if s["metadata"]["name"] == access.PREDICTION_LOG_SECRET
    )
    assert secret["metadata"]["namespace"] == SERVING
    url = secret["data"][access.PREDICTION_LOG_KEY]
    assert url.startswith("postgresql://mlstack:${urlencode(random_password.")
    assert url.endswith(":5432/mlstack")
    assert any("helm_release." in d for d in secret["depends_on"])  # the namespace first
    applied = [
        o
        for release in config["resource"]["helm_release"].values()
        for o in json.loads(release["values"][0]).get("objects", [])
    ]
    spec = spec_for("aws")
    role = _role(render(spec, Endpoints("s3://b/mlflow", "db")), "Role")
    assert _role(applied, "Role")["rules"] == role["rules"]
    assert _role(applied, "RoleBinding")["subjects"] == access.subjects(spec)
    forward = [o for o in applied if o["metadata"]["name"] == access.MLFLOW_FORWARD]
    assert [o["kind"] for o in forward] == ["Role", "RoleBinding"]  # port-forward to MLflow


def _terraform_access(spec: Any, call: str) -> dict[str, Any]:
    """The Terraform JSON of mlstack_tf.access's `call` alone (`eks_access_entries(stack,
    spec, 'mlstack')`) for `spec`, synthesized by the Terraform path's environment."""
    from tests.infra.conftest import TERRAFORM, TERRAFORM_PYTHON, terraform_environment

    if not TERRAFORM_PYTHON.exists():
        pytest.skip("the Terraform path's environment (infra/terraform/.venv) is missing")
    script = (
        "import json, sys\n"
        "from cdktn import TerraformStack, Testing\n"
        "from mlstack_tf import access\n"  # puts mlstack_infra on the path
        "from mlstack_infra.spec import parse_spec\n"
        "spec = parse_spec(json.loads(sys.argv[1]))\n"
        "stack = TerraformStack(Testing.app(), 'test')\n"
        f"access.{call}\n"
        "print(Testing.synth(stack))\n"
    )
    done = subprocess.run(
        [str(TERRAFORM_PYTHON), "-c", script, json.dumps(spec.model_dump(mode="json"))],
        cwd=TERRAFORM,
        env=terraform_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _access_posture(items: list[Any]) -> list[Any]:
    return sorted(
        i for i in items if i.kind in ("cluster access", "cluster access policy", "project role")
    )


@pytest.mark.parametrize(
    ("target", "deployers", "call"),
    [
        ("aws", {"aws_principals": [ARN]}, "eks_access_entries(stack, spec, 'mlstack')"),
        ("gcp", {"gcp_members": ["group:ml@example.com"]}, "gke_cluster_viewers(stack, spec)"),
    ],
)
def test_both_paths_give_the_deployers_the_same_cloud_access(
    mocks: RecordingMocks, target: str, deployers: dict[str, Any], call: str
) -> None:
    from mlstack_infra.posture import from_pulumi, from_terraform

    spec = spec_for(target, deployers=deployers)
    run_program(lambda: build(spec))
    terraform = _terraform_access(spec, call)
    pulumi_side = _access_posture(from_pulumi(mocks.resources))
    terraform_side = _access_posture(from_terraform(terraform))
    assert pulumi_side == terraform_side
    assert any(i.kind in ("cluster access", "project role") for i in pulumi_side)
    assert not any(i.kind == "cluster access policy" for i in pulumi_side)
    if target == "aws":
        entries = terraform["resource"]["aws_eks_access_entry"]
        assert [(e["principal_arn"], e["kubernetes_groups"]) for e in entries.values()] == [
            (ARN, ["mlstack-deployers"])
        ]


def test_a_cloud_grant_beside_the_role_is_a_policy_violation() -> None:
    from mlstack_infra.policies import Declared, violations

    admin = Declared(
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
        "admin",
        {
            "principalArn": ARN,
            "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
            "accessScope": {"type": "cluster"},
        },
    )
    owner = Declared(
        "gcp:projects/iAMMember:IAMMember",
        "owner",
        {"project": "p", "member": "group:ml@example.com", "role": "roles/owner"},
    )
    viewer = Declared(
        "gcp:projects/iAMMember:IAMMember",
        "viewer",
        {"project": "p", "member": "group:ml@example.com", "role": access.GKE_CLUSTER_VIEWER},
    )
    found = violations([admin, owner, viewer])["access_is_the_deployer_role_only"]
    assert len(found) == 2
    assert any("AmazonEKSClusterAdminPolicy" in f for f in found)
    assert any("roles/owner" in f for f in found)
