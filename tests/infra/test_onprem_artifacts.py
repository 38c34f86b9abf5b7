"""On-prem artifacts: MLflow reaches the in-cluster MinIO with its keys read from the MinIO
Secret by reference (never a value in any manifest), its bucket is created before MLflow
starts, and the exported stack file names the S3 endpoint and the Secret; the same on both
paths (the Pulumi program under its mocks, the synthesized Terraform JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlstack_infra.manifests import MINIO_SECRET
from mlstack_infra.stack_output import MINIO_ENDPOINT, render_stack

from tests.infra.conftest import RecordingMocks
from tests.infra.test_targets import services_group
from tests.infra.test_terraform import example_spec, pulumi_posture, resources, synthesized


def _mlflow_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [mlflow] = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlflow"
    ]
    return dict(mlflow["spec"]["template"]["spec"])


def _check_pod(pod: dict[str, Any]) -> None:
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == MINIO_ENDPOINT
    for name, key in (("AWS_ACCESS_KEY_ID", "access_key"), ("AWS_SECRET_ACCESS_KEY", "secret_key")):
        assert env[name] == {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": MINIO_SECRET, "key": key}},
        }
    [init] = pod["initContainers"]
    script = init["command"][-1]
    assert "mb --ignore-existing store/mlflow" in script  # s3://mlflow/artifacts' bucket
    init_env = {e["name"]: e for e in init["env"]}
    assert init_env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == MINIO_SECRET
    assert init["securityContext"]["allowPrivilegeEscalation"] is False


def test_pulumi_gives_mlflow_minio_by_reference_and_creates_its_bucket_first(
    mocks: RecordingMocks,
) -> None:
    pulumi_posture(mocks, "onprem")
    [group] = services_group(mocks.resources)
    objects = list(group.inputs["objs"])
    _check_pod(_mlflow_pod(objects))
    assert "generated-password" not in json.dumps(objects)  # the mocks' generated key
    [secret] = [
        r for r in mocks.resources if r.type == "kubernetes:core/v1:Secret" and "minio" in r.name
    ]
    assert secret.inputs["metadata"]["name"] == MINIO_SECRET
    # what the program exports as `mlstack` (MlstackServices.stack_yaml)
    stack_yaml = render_stack(
        example_spec("onprem"),
        database_host="postgres.mlstack",
        artifact_root="s3://mlflow/artifacts",
    )
    assert MINIO_ENDPOINT in stack_yaml and f"mlstack/{MINIO_SECRET}" in stack_yaml
    assert "generated-password" not in stack_yaml


def test_terraform_gives_mlflow_minio_by_reference_and_creates_its_bucket_first(
    terraform_out: Path,
) -> None:
    config = synthesized(terraform_out, "onprem")
    release = resources(config, "helm_release")["mlstack-services-release"]
    objects = json.loads(release["values"][0])["objects"]
    _check_pod(_mlflow_pod(objects))
    assert "random_password" not in release["values"][0]
    secret = resources(config, "kubernetes_secret_v1")["mlstack-minio"]
    assert secret["metadata"]["name"] == MINIO_SECRET
    assert secret["data"]["secret_key"] == "${random_password.mlstack-minio-key.result}"
    stack_yaml = config["output"]["mlstack"]["value"]
    assert MINIO_ENDPOINT in stack_yaml and f"mlstack/{MINIO_SECRET}" in stack_yaml
    assert "random_password" not in stack_yaml


def test_clouds_mlflow_uses_its_identity_and_no_store_keys(mocks: RecordingMocks) -> None:
    assert example_spec("aws").target == "aws"
    pulumi_posture(mocks, "aws")
    [group] = services_group(mocks.resources)
    pod = _mlflow_pod(list(group.inputs["objs"]))
    assert "initContainers" not in pod
    assert not {e["name"] for e in pod["containers"][0]["env"]} & {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
