"""The production `stack.yaml` the program exports: mlstack pointed at the new cluster.

Secrets are references (`${MLSTACK_DB_PASSWORD}`, read from the environment when mlstack
reads the file), never values: the file can be shared and committed; the password comes from
`pulumi stack output database_password --show-secrets` (or `terraform output -raw
database_password`) or the cloud's secret manager. Both paths (Pulumi and the Terraform app)
export it under the same output names: OUTPUTS."""

from __future__ import annotations

from typing import Any

import yaml

from mlstack_infra.access import PREDICTION_LOG_ENV, PREDICTION_LOG_KEY, PREDICTION_LOG_SECRET
from mlstack_infra.gateway import GATEWAY, PROXY_NAMESPACE
from mlstack_infra.manifests import (
    MINIO_SECRET,
    NAMESPACE,
    SERVING,
    SERVING_PRIORITY,
    artifact_bucket,
)
from mlstack_infra.spec import InfraSpec

PASSWORD_REF = "${MLSTACK_DB_PASSWORD}"

#: The outputs both paths export: the stack file, how to reach the cluster, the generated
#: database password (secret), and where artifacts go.
OUTPUTS = ("mlstack", "kubeconfig", "database_password", "artifact_root")

#: On-prem: MinIO's S3 endpoint inside the cluster (its Service, stores.py).
MINIO_ENDPOINT = f"http://minio.{NAMESPACE}:9000"

_WRITTEN_BY = {
    "pulumi": ("pulumi up", "pulumi stack output database_password --show-secrets"),
    "terraform": ("terraform apply", "terraform output -raw database_password"),
}


def stack_document(spec: InfraSpec, *, database_host: str, artifact_root: str) -> dict[str, Any]:
    tracking = f"http://mlflow.{NAMESPACE}:5000"
    gpu_pool = next((p for p in spec.gpu_pools), None)
    kubernetes: dict[str, Any] = {"namespace": SERVING, "priority_class": SERVING_PRIORITY}
    if spec.services.serving:  # the program creates the Secret with the serving namespace
        kubernetes["secrets"] = [
            {"env": PREDICTION_LOG_ENV, "secret": PREDICTION_LOG_SECRET, "key": PREDICTION_LOG_KEY}
        ]
    if gpu_pool is not None:
        kubernetes.update(
            gpus=1,
            node_selector={"mlstack.io/gpu": "true"},
            tolerations=spec.gpu_tolerations(),
        )
    if spec.services.serving:  # the Gateway gateway.py creates; where its proxies run
        kubernetes.update(gateway=GATEWAY, proxy_namespace=PROXY_NAMESPACE)
    document: dict[str, Any] = {
        "name": spec.name,
        "home": ".mlstack",
        "tracker": {
            "adapter": "mlflow",
            "tracking_uri": tracking,
            "artifact_location": artifact_root,
        },
        "registry": {"adapter": "mlflow", "tracking_uri": tracking},
        "server": {
            "adapter": "bentoml",
            "models_from": {"tracking_uri": tracking},
            "prediction_log": {
                "url": f"postgresql://mlstack@{database_host}:5432/mlstack",
                "password": PASSWORD_REF,
            },
            "kubernetes": kubernetes,
        },
        "monitor": {"adapter": "evidently"},
        "orchestrator": (
            {"adapter": "kfp", "host": "http://ml-pipeline.kubeflow:8888", "image": spec.image}
            if spec.services.kubeflow_pipelines
            else {"adapter": "local"}
        ),
        "spine": {
            "url": f"postgresql://mlstack@{database_host}:5432/mlstack",
            "password": PASSWORD_REF,
        },
    }
    if spec.services.feast:
        document["features"] = {
            "adapter": "feast",
            "online_store": {"type": "redis", "connection_string": f"redis.{NAMESPACE}:6379"},
        }
    return document


def render_stack(
    spec: InfraSpec, *, database_host: str, artifact_root: str, tool: str = "pulumi"
) -> str:
    """The stack file's text; `tool` ("pulumi" or "terraform") names the commands in its
    header."""
    apply, password = _WRITTEN_BY[tool]
    header = (
        f"# mlstack on the {spec.target} cluster {spec.name!r}, written by `{apply}`.\n"
        f"# export MLSTACK_DB_PASSWORD=$({password})\n"
    )
    if spec.target == "onprem":
        header += (
            f"# artifacts: MinIO's S3 API at {MINIO_ENDPOINT}, bucket "
            f"{artifact_bucket(artifact_root)!r}, keys in the Kubernetes Secret "
            f"{NAMESPACE}/{MINIO_SECRET} (access_key, secret_key): MLflow's server reads them\n"
            "# by reference and serves the artifacts (clients need none). For direct S3 access:\n"
            f"# export MLFLOW_S3_ENDPOINT_URL={MINIO_ENDPOINT}\n"
            f"# export AWS_ACCESS_KEY_ID=$(kubectl -n {NAMESPACE} get secret {MINIO_SECRET} "
            "-o jsonpath='{.data.access_key}' | base64 -d)\n"
            f"# export AWS_SECRET_ACCESS_KEY=$(kubectl -n {NAMESPACE} get secret {MINIO_SECRET} "
            "-o jsonpath='{.data.secret_key}' | base64 -d)\n"
        )
    document = stack_document(spec, database_host=database_host, artifact_root=artifact_root)
    return header + yaml.safe_dump(document, sort_keys=False)
