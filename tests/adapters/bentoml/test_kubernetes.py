"""`mlstack deploy --target kubernetes --dry-run`: manifests a cluster accepts, validated with
kubernetes-validate --strict against a current Kubernetes version."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from stack.config.rollout import RolloutPlan
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout.kubernetes import render_manifests
from stack.session import StackSession
from tests.adapters.bentoml.models import Registered, home
from tests.support.cli import Cli

GPU_STACK = """
name: cluster
home: .mlstack
tracker: {adapter: mlflow}
registry: {adapter: mlflow}
server:
  adapter: bentoml
  kubernetes:
    namespace: ml-serving
    image: registry.example.com/churn:{model}-v{version}
    gpus: 1
    node_selector: {cloud.google.com/gke-accelerator: nvidia-l4}
    tolerations: [{key: dedicated, operator: Equal, value: ml, effect: NoSchedule}]
    min_replicas: 2
    max_replicas: 6
    endpoints: {Churn: {max_replicas: 8}}  # not the endpoint's name: sizes nothing
spine: {url: "sqlite:///.mlstack/spine.db"}
"""


def validate(documents: str, folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "manifests.yaml"
    path.write_text(documents)
    validator = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run(
        [str(validator), "--strict", str(path)], capture_output=True, text=True, timeout=120
    )


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_canary_manifests_validate_and_schedule_on_gpu_pools(
    cli: Cli, workdir: Path, registered_template: Registered
) -> None:
    (workdir / "stack.yaml").write_text(GPU_STACK)
    versions = registered_template.copy_to(home(workdir))
    with StackSession.open(workdir / "stack.yaml", base_dir=workdir) as session:
        governance = Governance(session)
        governance.promote(versions.champion.ref, S.APPROVED)
        governance.promote(versions.champion.ref, S.SERVING)
        governance.promote(versions.challenger.ref, S.APPROVED)
        shadow = render_manifests(
            session, versions.challenger, RolloutPlan(strategy="shadow", endpoint="churn")
        )

    result = cli(
        "deploy",
        versions.challenger.ref,
        "--target",
        "kubernetes",
        "--dry-run",
        "--strategy",
        "canary",
        "--steps",
        "10,50,100",
    )
    assert result.returncode == 0, result.stderr
    # no server.prediction_log: said on stderr (stdout is the manifests), the image's
    # registry named: no Docker Hub warning
    assert "WARNING: the stack file names no server.prediction_log" in result.stderr
    assert "Docker Hub" not in result.stderr
    assert "WARNING: server.kubernetes.endpoints sizes 'Churn', not 'churn'" in result.stderr
    assert not re.search(r"[&*]id\d+", result.stdout), "each object written whole, no aliases"
    checked = validate(result.stdout, workdir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed") == 9  # 2 x (Deployment, Service, HPA, PDB), policy
    assert "schema for kind HTTPRoute" in checked.stdout  # the CRD has none here: a warning

    objects = list(yaml.safe_load_all(result.stdout))
    deployments = by_kind(objects, "Deployment")
    assert [d["metadata"]["name"] for d in deployments] == ["churn-v1", "churn-v2"]
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
            pod["tolerations"]
        )
        assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # BentoML's image entrypoint runs `bentoml serve ARGS $BENTO_PATH`: no service path
        # of our own (an "unexpected extra argument" that stops the pod)
        assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "3000"]
        assert deployment["metadata"]["namespace"] == "ml-serving"
    assert {h["spec"]["maxReplicas"] for h in by_kind(objects, "HorizontalPodAutoscaler")} == {6}
    [route] = by_kind(objects, "HTTPRoute")
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"churn-v1": 90, "churn-v2": 10}
    assert not (workdir / ".mlstack" / "serving").exists(), "a dry run starts nothing"

    mirrored = list(yaml.safe_load_all(shadow))
    [shadow_route] = by_kind(mirrored, "HTTPRoute")
    rule = shadow_route["spec"]["rules"][0]
    assert [b["name"] for b in rule["backendRefs"]] == ["churn-v1"]
    assert rule["filters"][0]["requestMirror"]["backendRef"]["name"] == "churn-v2"
    assert validate(shadow, workdir).returncode == 0


DEFAULT_IMAGE_STACK = """
name: cluster
home: .mlstack
tracker: {adapter: mlflow}
registry: {adapter: mlflow}
server: {adapter: bentoml}
spine: {url: "sqlite:///.mlstack/spine.db"}
"""


def test_a_rollout_on_the_cluster_is_refused_without_a_postgresql_prediction_log(
    cli: Cli, workdir: Path, registered_template: Registered
) -> None:
    """Pods with no `server.prediction_log` log to Parquet in their own /tmp, which no
    rollout reads: every canary would hold undecided. A dry run warns (and of the image
    pulled from Docker Hub); a rollout is refused before the cluster is asked anything."""
    (workdir / "stack.yaml").write_text(DEFAULT_IMAGE_STACK)
    versions = registered_template.copy_to(home(workdir))
    ref = versions.champion.ref

    dry = cli("deploy", ref, "--target", "kubernetes", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "WARNING: the stack file names no server.prediction_log" in dry.stderr
    assert "WARNING: the image 'mlstack-endpoint:{model}-v{version}' names no registry" in (
        dry.stderr
    )
    assert "set server.kubernetes.image" in dry.stderr
    assert "kind: Deployment" in dry.stdout and "WARNING" not in dry.stdout

    refused = cli("deploy", ref, "--target", "kubernetes")
    assert refused.returncode != 0
    assert "no rollout on the cluster" in refused.stderr
    assert "server.prediction_log" in refused.stderr
    assert "kubeconfig" not in refused.stderr.lower()  # refused before connecting


def test_a_version_packages_as_a_bento_offline_and_a_rebuild_replaces_it(
    cli: Cli, workdir: Path, registered_template: Registered
) -> None:
    import json
    import os

    (workdir / "stack.yaml").write_text(GPU_STACK)
    versions = registered_template.copy_to(home(workdir))
    env = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/unreachable", "PIP_NO_INDEX": "1"}

    def package() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "mlstack"),
                "deploy",
                versions.champion.ref,
                "--target",
                "bento",
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    built = package()
    assert built.returncode == 0, built.stdout + built.stderr
    assert "built mlstack-churn:v1" in built.stdout and "rebuilt" not in built.stdout
    assert "WARNING: the stack file names no server.prediction_log" in built.stderr
    assert "Docker Hub" not in built.stderr

    # the stack changed after the build: the same version's bento is built anew, in place
    (workdir / "stack.yaml").write_text(
        GPU_STACK.replace("registry.example.com/churn", "registry.example.com/churn-gpu")
    )
    rebuilt = package()
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilt mlstack-churn:v1" in rebuilt.stdout
    assert "-t registry.example.com/churn-gpu:churn-v1" in rebuilt.stdout
    bento_env = {**env, "BENTOML_HOME": str(workdir / ".mlstack" / "bentoml")}
    shown = subprocess.run(
        [sys.executable, "-m", "bentoml", "get", "mlstack-churn:v1", "-o", "json"],
        env=bento_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert [m["tag"] for m in info["models"]] == ["churn:v1"]
    assert info["labels"]["mlstack.version"] == "1"
