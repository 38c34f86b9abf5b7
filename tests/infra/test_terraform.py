"""The Terraform path (infra/terraform, a CDK Terrain app), synthesized once for the four
example stacks (the `terraform_out` fixture): the same security posture as the Pulumi program
under its mocks, the policy rules clean, the services applied from the manifests the project
renders, the outputs under the Pulumi program's names, checkov clean but for the committed
waivers, and a bad spec refused before synthesis.

`terraform fmt` cannot check this output: it formats HCL only (`.tf`, `.tfvars`) and refuses
`.tf.json`, so the JSON is checked as Terraform's JSON syntax instead. `terraform validate`
needs the providers installed, which `terraform init` downloads from the registry: where it
cannot (no network), that test skips saying so."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlstack_infra.policies import violations
from mlstack_infra.posture import Item, from_pulumi, from_terraform
from mlstack_infra.spec import SpecError, parse_spec
from mlstack_infra.stack_output import OUTPUTS, render_stack

from tests.infra.conftest import (
    ROOT,
    TARGETS,
    TERRAFORM,
    TERRAFORM_PYTHON,
    RecordingMocks,
    run_program,
    terraform_environment,
)
from tests.support.cli import MLSTACK, mlstack

EXAMPLES = {
    "aws": "Pulumi.aws-gpu.yaml",
    "gcp": "Pulumi.gcp-gpu.yaml",
    "azure": "Pulumi.azure-gpu.yaml",
    "onprem": "Pulumi.onprem.yaml",
}


def synthesized(out: Path, target: str) -> dict[str, Any]:
    return json.loads((out / target / "cdk.tf.json").read_text())


def example_spec(target: str) -> Any:
    path = ROOT / "infra" / "pulumi" / EXAMPLES[target]
    return parse_spec(yaml.safe_load(path.read_text())["config"]["mlstack:spec"])


def pulumi_posture(mocks: RecordingMocks, target: str) -> list[Item]:
    import pulumi
    from mlstack_infra.program import build

    spec = example_spec(target)
    kubeconfig = pulumi.Output.secret("apiVersion: v1") if target == "onprem" else None
    run_program(lambda: build(spec, kubeconfig=kubeconfig))
    return from_pulumi(mocks.resources)


def resources(config: dict[str, Any], kind: str) -> dict[str, Any]:
    return dict(config["resource"].get(kind) or {})


@pytest.mark.parametrize("target", TARGETS)
def test_both_paths_declare_the_same_security_posture(
    mocks: RecordingMocks, terraform_out: Path, target: str
) -> None:
    pulumi_side = pulumi_posture(mocks, target)
    terraform_side = from_terraform(synthesized(terraform_out, target))
    only_pulumi = sorted(set(pulumi_side) - set(terraform_side))
    only_terraform = sorted(set(terraform_side) - set(pulumi_side))
    assert (only_pulumi, only_terraform) == ([], [])
    kinds = {i.kind for i in terraform_side}
    expected = {"kubernetes", "addon"} | (
        set() if target == "onprem" else {"cluster", "node_pool", "bucket", "database", "identity"}
    )
    assert expected <= kinds


def test_a_security_setting_changed_on_one_path_is_seen(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    config = synthesized(terraform_out, "aws")
    [database] = resources(config, "aws_db_instance").values()
    database["publicly_accessible"] = True
    [gpu] = [g for g in resources(config, "aws_eks_node_group").values() if g.get("taint")]
    gpu["taint"] = []
    drifted = set(from_terraform(config)) ^ set(pulumi_posture(mocks, "aws"))
    assert {(i.kind, i.name) for i in drifted} == {("database", "database"), ("node_pool", "gpu")}
    assert "databases_are_private" in violations(from_terraform(config))


def _installer_containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c
        for o in objects
        if o["kind"] == "Job"
        for c in o["spec"]["template"]["spec"]["containers"]
    ]


def test_the_installer_jobs_run_the_default_image_fully_qualified(terraform_out: Path) -> None:
    releases = resources(synthesized(terraform_out, "aws"), "helm_release")
    containers = [
        c
        for name in ("mlstack-kubeflow-pipelines", "mlstack-gateway-api-crds")
        for c in _installer_containers(json.loads(releases[name]["values"][0])["objects"])
    ]
    assert len(containers) == 2
    for container in containers:
        assert container["image"] == "docker.io/alpine/k8s:1.33.4"
        assert container["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize(
    "image",
    [
        "mirror.example:5000/tools/alpine-k8s:1.33.4",
        "docker.io/alpine/k8s@sha256:" + "a" * 64,
        "docker.io/alpine/k8s:1.33.4@sha256:" + "b" * 64,
    ],
)
def test_the_installer_jobs_run_the_image_the_spec_pins(
    monkeypatch: pytest.MonkeyPatch, image: str
) -> None:
    monkeypatch.syspath_prepend(str(TERRAFORM))  # mlstack_tf.kfp imports no binding
    from mlstack_infra import gateway
    from mlstack_tf.kfp import installer, installer_job

    spec = example_spec("aws").model_copy(update={"installer_image": image})
    spec = parse_spec(spec.model_dump(mode="json"))
    jobs = installer(spec) + installer_job(spec, gateway.CRDS_RELEASE, gateway.crds_script())
    assert [(c["image"], c["imagePullPolicy"]) for c in _installer_containers(jobs)] == [
        (image, "IfNotPresent")
    ] * 2


def test_the_database_admits_postgresql_from_the_eks_cluster_security_group_only(
    terraform_out: Path,
) -> None:
    config = synthesized(terraform_out, "aws")
    [(name, group)] = resources(config, "aws_security_group").items()
    [rule] = group["ingress"]
    assert rule["security_groups"] == [
        "${aws_eks_cluster.mlstack-eks.vpc_config[0].cluster_security_group_id}"
    ]
    assert not rule["cidr_blocks"]
    assert (rule["protocol"], rule["from_port"], rule["to_port"]) == ("tcp", 5432, 5432)
    [database] = resources(config, "aws_db_instance").values()
    assert database["vpc_security_group_ids"] == [f"${{aws_security_group.{name}.id}}"]


@pytest.mark.parametrize("target", TARGETS)
def test_the_policy_rules_pass_on_the_terraform_json(terraform_out: Path, target: str) -> None:
    assert violations(from_terraform(synthesized(terraform_out, target))) == {}


def test_gpu_pools_carry_their_taints_labels_and_autoscaling_bounds(terraform_out: Path) -> None:
    aws = resources(synthesized(terraform_out, "aws"), "aws_eks_node_group")["mlstack-gpu"]
    assert aws["ami_type"] == "AL2023_x86_64_NVIDIA" and aws["capacity_type"] == "SPOT"
    assert aws["taint"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert aws["labels"]["mlstack.io/gpu"] == "true"
    assert aws["scaling_config"] == {"desired_size": 0, "min_size": 0, "max_size": 4}
    assert aws["lifecycle"]["ignore_changes"] == ["scaling_config[0].desired_size"]

    gcp = resources(synthesized(terraform_out, "gcp"), "google_container_node_pool")["mlstack-gpu"]
    [accelerator] = gcp["node_config"]["guest_accelerator"]
    assert accelerator == {
        "type": "nvidia-l4",
        "count": 1,
        "gpu_driver_installation_config": {"gpu_driver_version": "LATEST"},
    }
    assert gcp["autoscaling"] == {"min_node_count": 0, "max_node_count": 4}
    assert gcp["node_config"]["workload_metadata_config"] == {"mode": "GKE_METADATA"}

    azure = synthesized(terraform_out, "azure")
    pool = resources(azure, "azurerm_kubernetes_cluster_node_pool")["mlstack-gpu"]
    assert pool["node_taints"] == [
        "nvidia.com/gpu=present:NoSchedule",
        "kubernetes.azure.com/scalesetpriority=spot:NoSchedule",  # AKS's, on a spot pool
    ]
    assert (pool["priority"], pool["mode"], pool["min_count"], pool["max_count"]) == (
        "Spot",
        "User",
        0,
        3,
    )
    [cluster] = resources(azure, "azurerm_kubernetes_cluster").values()
    assert cluster["workload_identity_enabled"] and cluster["private_cluster_enabled"]


def test_the_services_are_the_manifests_the_project_renders(terraform_out: Path) -> None:
    config = synthesized(terraform_out, "aws")
    releases = resources(config, "helm_release")
    services = releases["mlstack-services-release"]
    assert services["chart"] == "${path.module}/charts/manifests"
    assert (terraform_out / "aws" / "charts" / "manifests" / "Chart.yaml").exists()
    objects = json.loads(services["values"][0])["objects"]
    named = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    for key in [
        ("Deployment", "mlflow"),
        ("Deployment", "feature-server"),
        ("Deployment", "redis"),
        ("CronJob", "monitor-churn"),
        ("NetworkPolicy", "only-the-gateway"),
        ("DaemonSet", "nvidia-device-plugin"),
        ("Deployment", "cluster-autoscaler"),
    ]:
        assert key in named, key
    args = named["Deployment", "mlflow"]["spec"]["template"]["spec"]["containers"][0]["args"]
    host = "${aws_db_instance.mlstack-database-instance.address}"
    assert f"postgresql://$(DB_USER):$(DB_PASSWORD)@{host}:5432/mlflow" in args
    account = named["ServiceAccount", "mlstack"]["metadata"]["annotations"]
    assert account == {"eks.amazonaws.com/role-arn": "${aws_iam_role.mlstack-services.arn}"}
    assert releases["mlstack-kubeflow-pipelines"]["name"] == "kubeflow-pipelines"
    secret = resources(config, "kubernetes_secret_v1")["mlstack-database-secret"]
    assert secret["data"]["password"] == "${random_password.mlstack-database-password.result}"


@pytest.mark.parametrize("target", TARGETS)
def test_the_outputs_are_the_pulumi_programs_and_hold_no_secret_value(
    terraform_out: Path, target: str
) -> None:
    outputs = synthesized(terraform_out, target)["output"]
    assert set(outputs) == set(OUTPUTS)
    assert all(outputs[name].get("sensitive") for name in ("mlstack", "kubeconfig"))
    assert outputs["database_password"]["sensitive"] is True
    stack_yaml = outputs["mlstack"]["value"]
    assert "$${MLSTACK_DB_PASSWORD}" in stack_yaml  # a reference Terraform leaves alone
    assert "random_password" not in stack_yaml


def _as_terraform_output(value: str, facts: dict[str, str]) -> str:
    """What `terraform output` prints for a value: its expressions evaluated, `$${` unescaped."""
    for expression, result in facts.items():
        value = value.replace("${" + expression + "}", result)
    assert not re.search(r"(?<!\$)\$\{(?!MLSTACK_DB_PASSWORD)", value), value
    return value.replace("$${", "${")


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_from_terraform_writes_the_stack_from_pulumi_would(
    terraform_out: Path, tmp_path: Path, source: str
) -> None:
    value = synthesized(terraform_out, "aws")["output"]["mlstack"]["value"]
    text = _as_terraform_output(
        value,
        {
            "aws_db_instance.mlstack-database-instance.address": "db.internal",
            "aws_s3_bucket.mlstack-artifacts.bucket": "acme-artifacts",
        },
    )
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps({"mlstack": {"sensitive": True, "type": "string", "value": text}})
    )
    env = {k: v for k, v in os.environ.items() if k != "MLSTACK_DB_PASSWORD"}
    done = subprocess.run(
        [
            str(MLSTACK),
            "stack",
            "from-terraform",
            str(outputs) if source == "file" else "-",
            "-o",
            "stack.yaml",
        ],
        cwd=tmp_path,
        env=env,
        input=None if source == "file" else outputs.read_text(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load((tmp_path / "stack.yaml").read_text())
    from_pulumi_program = render_stack(
        example_spec("aws"), database_host="db.internal", artifact_root="s3://acme-artifacts/mlflow"
    )
    assert written == yaml.safe_load(from_pulumi_program)
    assert written["spine"]["password"] == "${MLSTACK_DB_PASSWORD}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"artifact_root": {"value": "s3://b"}}', "has no `mlstack` output"),
        ("not json", "is not JSON"),
        (
            json.dumps(
                {"mlstack": {"value": "name: x\ntracker: {adapter: mlflow, nonsense: 1}\n"}}
            ),
            "nonsense",
        ),
    ],
)
def test_from_terraform_refuses_what_is_not_a_stack_and_writes_nothing(
    tmp_path: Path, content: str, message: str
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(content)
    done = mlstack("stack", "from-terraform", str(outputs), "-o", "stack.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr + done.stdout
    assert not (tmp_path / "stack.yaml").exists()


TERRAFORM_JSON_BLOCKS = {"//", "terraform", "provider", "resource", "data", "variable", "output"}


@pytest.mark.parametrize("target", TARGETS)
def test_the_json_is_terraform_configuration(terraform_out: Path, target: str) -> None:
    config = synthesized(terraform_out, target)
    assert set(config) <= TERRAFORM_JSON_BLOCKS
    providers = config["terraform"]["required_providers"]
    for kind in config["resource"]:
        assert kind.split("_", 1)[0] in providers, kind
    assert config["terraform"]["backend"] == {"local": {"path": "terraform.tfstate"}}


#: What a `${...}` may start with in the configuration: a function, a variable or the folder.
FUNCTIONS = (
    "base64decode(",
    "replace(",
    "urlencode(",
    "file(",
    "pathexpand(",
    "var.",
    "path.module",
)


@pytest.mark.parametrize("target", TARGETS)
def test_every_interpolation_refers_to_something_the_configuration_declares(
    terraform_out: Path, target: str
) -> None:
    """Text meant for others (`${MLSTACK_DB_PASSWORD}`, Grafana's `${datasource}`) is escaped
    (`$${`); what Terraform evaluates names a declared resource, a variable or a function."""
    config = synthesized(terraform_out, target)
    text = json.dumps(config)
    declared = tuple(
        f"{kind}.{name}." for kind, named in config["resource"].items() for name in named
    )
    expressions = re.findall(r"(?<!\$)\$\{([^}]*)\}", text)
    assert expressions
    strays = sorted({e for e in expressions if not e.startswith(declared + FUNCTIONS)})
    assert strays == []


@pytest.mark.parametrize("target", ["onprem", "aws"])
def test_terraform_validates_the_configuration(
    terraform_out: Path, tmp_path: Path, target: str
) -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform validate skipped: no terraform binary on this machine")
    folder = tmp_path / target
    shutil.copytree(terraform_out / target, folder)
    init = subprocess.run(
        [terraform, "init", "-backend=false", "-input=false", "-no-color"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if init.returncode != 0:
        error = init.stderr.split("Error:", 1)[-1]  # past the CLI-configuration warnings
        reason = " ".join(error.split())[:300]
        pytest.skip(
            "terraform validate skipped: the configuration needs providers that `terraform "
            f"init` downloads, and it cannot here ({reason})"
        )
    done = subprocess.run(
        [terraform, "validate", "-no-color"], cwd=folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_finds_nothing_that_is_not_waived_with_a_reason(terraform_out: Path) -> None:
    waivers = yaml.safe_load((TERRAFORM / "checkov-waivers.yaml").read_text())
    assert all(isinstance(reason, str) and len(reason.strip()) >= 10 for reason in waivers.values())
    done = subprocess.run(  # one run over the four targets' folders
        [
            str(TERRAFORM_PYTHON.parent / "checkov"),
            "--directory",
            str(terraform_out),
            "--framework",
            "terraform_json",
            "--skip-download",  # offline: no severities, so every failure counts
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        env={**terraform_environment(), "BC_API_KEY": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    reports = json.loads(done.stdout)
    found: dict[str, set[str]] = {}
    for report in reports if isinstance(reports, list) else [reports]:
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        assert report["summary"]["passed"] > 0
        for check in report["results"]["failed_checks"]:
            where = f"{check['repo_file_path']}: {check['resource']}"
            found.setdefault(check["check_id"], set()).add(where)
    unwaived = {check: sorted(where) for check, where in found.items() if check not in waivers}
    assert unwaived == {}
    stale = sorted(set(waivers) - set(found))
    assert stale == [], f"waivers for checks that no longer fail: {stale}"


def run_app(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m mlstack_tf.app ARGS` in the Terraform path's environment."""
    return subprocess.run(
        [str(TERRAFORM_PYTHON), "-m", "mlstack_tf.app", *args],
        cwd=TERRAFORM,
        env=terraform_environment(),
        capture_output=True,
        text=True,
    )


def synthesize(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The Terraform JSON the app synthesizes from a stack file holding `spec`, in `folder`
    (skipped, saying why, where node or the Terraform path's environment is missing)."""
    if shutil.which("node") is None or not TERRAFORM_PYTHON.exists():
        pytest.skip("node or the Terraform path's environment (infra/terraform/.venv) is missing")
    path = folder / "Pulumi.spec.yaml"
    path.write_text(yaml.safe_dump({"config": {"mlstack:spec": spec}}))
    done = run_app("--out", str(folder / "out"), str(path))
    assert done.returncode == 0, done.stderr
    return synthesized(folder / "out", spec["target"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, "mlstack:spec: node_pools[1]: gpu_count is set but gpu_type is not"),
        (
            {"api_access_cidrs": ["10.0.0.0/33"]},
            "mlstack:spec: api_access_cidrs[0]: '10.0.0.0/33' is not an IPv4 CIDR",
        ),
        (
            {"node_pools": [{"name": "system", "machine_type": "n2-standard-8"}]},
            "mlstack:spec: node_pools[0].machine_type: 'n2-standard-8' is not a aws machine",
        ),
        (
            {"services": {"monitoring": [{"model": "churn", "schedule": "hourly"}]}},
            "mlstack:spec: services.monitoring[0].schedule: 'hourly' is not a cron expression",
        ),
        (
            {"installer_image": "alpine/k8s"},
            "mlstack:spec: installer_image: 'alpine/k8s' has no tag or digest",
        ),
    ],
)
def test_a_bad_spec_is_refused_before_synthesis_with_the_field_named(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    if not TERRAFORM_PYTHON.exists():
        pytest.skip("the Terraform path's environment (infra/terraform/.venv) is missing")
    spec = {
        "target": "aws",
        "region": "us-east-1",
        "node_pools": [
            {"name": "system", "machine_type": "m6i.xlarge"},
            {"name": "gpu", "machine_type": "g5.xlarge", "gpu_count": 1},
        ],
        **change,
    }
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(yaml.safe_dump({"config": {"mlstack:spec": spec}}))
    done = run_app("--out", str(tmp_path / "out"), str(path))
    assert done.returncode == 2
    with pytest.raises(SpecError) as pulumi_path:
        parse_spec(spec, where="Pulumi.broken.yaml: mlstack:spec")
    assert done.stderr.strip() == f"error: {pulumi_path.value}"
    assert f"Pulumi.broken.yaml: {message}" in done.stderr
    assert not (tmp_path / "out").exists()


def test_synthesizing_again_keeps_the_state_and_backend_of_an_applied_folder(
    terraform_out: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "onprem"
    folder.mkdir()
    kept = {"terraform.tfstate": '{"version": 4}', "backend_override.tf.json": '{"terraform": {}}'}
    for name, text in kept.items():
        (folder / name).write_text(text)
    (folder / "cdk.tf.json").write_text("{}")
    done = run_app("--out", str(tmp_path), str(ROOT / "infra" / "pulumi" / EXAMPLES["onprem"]))
    assert done.returncode == 0, done.stderr
    assert {name: (folder / name).read_text() for name in kept} == kept
    assert synthesized(tmp_path, "onprem") == synthesized(terraform_out, "onprem")


def test_a_folder_synthesized_from_another_spec_is_refused_and_left_alone(
    terraform_out: Path, tmp_path: Path
) -> None:
    example = ROOT / "infra" / "pulumi" / EXAMPLES["onprem"]
    assert (terraform_out / "onprem" / ".mlstack-spec").read_text().strip() == str(example)
    mine = tmp_path / "my-stack.yaml"
    spec = yaml.safe_load(example.read_text())["config"]["mlstack:spec"]
    mine.write_text(yaml.safe_dump(spec))
    folder = tmp_path / "out" / "onprem"
    shutil.copytree(terraform_out / "onprem", folder)
    (folder / "terraform.tfstate").write_text('{"version": 4}')
    before = (folder / "cdk.tf.json").read_text()
    done = run_app("--out", str(tmp_path / "out"), str(mine))
    assert done.returncode == 2
    assert f"error: {mine}: {folder} was synthesized from {example}, not from this spec" in (
        done.stderr
    )
    assert (folder / "cdk.tf.json").read_text() == before
    assert (folder / ".mlstack-spec").read_text().strip() == str(example)


def test_the_example_stacks_are_synthesized_apart_from_the_users_folders() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "-m mlstack_tf.app --out out/examples" in makefile
    done = run_app("--help")
    assert "out/examples/<target>/ for the example stacks" in " ".join(done.stdout.split())


@pytest.mark.parametrize("target", ["aws", "onprem"])
def test_the_objects_the_helm_releases_apply_are_valid_kubernetes(
    terraform_out: Path, tmp_path: Path, target: str
) -> None:
    import sys

    objects = [
        obj
        for release in resources(synthesized(terraform_out, target), "helm_release").values()
        for obj in json.loads(release["values"][0]).get("objects", [])  # not Envoy Gateway's
    ]
    assert {"Job", "StatefulSet" if target == "onprem" else "DaemonSet"} <= {
        o["kind"] for o in objects
    }
    path = tmp_path / "objects.yaml"
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


RENDER = """
import json, sys
import helm_python
chart = helm_python.Chart.load(sys.argv[1])
values = json.loads(open(sys.argv[2]).read())
print(json.dumps(chart.render(values, name="mlstack-services", namespace="mlstack")))
"""


def test_helm_renders_the_release_into_exactly_the_objects_it_is_given(
    terraform_out: Path, tmp_path: Path
) -> None:
    release = resources(synthesized(terraform_out, "aws"), "helm_release")
    values = release["mlstack-services-release"]["values"][0]
    (tmp_path / "values.json").write_text(values)
    done = subprocess.run(
        [
            str(TERRAFORM_PYTHON),
            "-c",
            RENDER,
            str(terraform_out / "aws" / "charts" / "manifests"),
            str(tmp_path / "values.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    rendered = [
        obj
        for manifest in json.loads(done.stdout).values()
        for obj in yaml.safe_load_all(manifest)
        if obj
    ]
    assert rendered == json.loads(values)["objects"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_creates_the_mlflow_feast_and_mlstack_databases(
    terraform_out: Path, target: str
) -> None:
    from tests.infra.test_targets import _databases_created_by_the_job

    config = synthesized(terraform_out, target)
    objects = [
        obj
        for release in resources(config, "helm_release").values()
        for obj in json.loads(release["values"][0]).get("objects", [])  # not Envoy Gateway's
    ]
    by_job = _databases_created_by_the_job(objects)
    by_cloud = {
        d["name"]
        for kind in ("google_sql_database", "azurerm_postgresql_flexible_server_database")
        for d in resources(config, kind).values()
    }
    assert by_job | by_cloud == {"mlflow", "feast", "mlstack"}
    assert not (by_job and by_cloud)
