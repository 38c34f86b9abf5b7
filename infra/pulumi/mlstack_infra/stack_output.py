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

#: What a machine outside the cluster sets to the MLflow server it reaches (a port-forward).
MLFLOW_URI_ENV = "MLSTACK_MLFLOW_URI"
#: The tracking server's Service (manifests.py `_mlflow`) and port, inside the cluster.
MLFLOW_SERVICE = "mlflow"
MLFLOW_PORT = 5000
#: The tracking URI the stack file holds: the in-cluster name, unless MLFLOW_URI_ENV is set.
TRACKING_URI = f"${{{MLFLOW_URI_ENV}:-http://{MLFLOW_SERVICE}.{NAMESPACE}:{MLFLOW_PORT}}}"

#: On-prem: MinIO's S3 endpoint inside the cluster (its Service, stores.py).
MINIO_ENDPOINT = f"http://minio.{NAMESPACE}:9000"

_WRITTEN_BY = {
    "pulumi": ("pulumi up", "pulumi stack output database_password --show-secrets"),
    "terraform": ("terraform apply", "terraform output -raw database_password"),
}


def stack_document(spec: InfraSpec, *, database_host: str) -> dict[str, Any]:
    """The stack file as data; `database_host` is the PostgreSQL server's address."""
    tracking = TRACKING_URI
    gpu_pool = next((p for p in spec.gpu_pools), None)
    kubernetes: dict[str, Any] = {"namespace": SERVING, "priority_class": SERVING_PRIORITY}
    if spec.services.serving:  # the program creates the Secret with the serving namespace
        kubernetes["secrets"] = [
            {"env": PREDICTION_LOG_ENV, "secret": PREDICTION_LOG_SECRET, "key": PREDICTION_LOG_KEY}
        ]
    if gpu_pool is not None:  # where GPU pods go; which endpoints get GPUs is the user's
        kubernetes["gpu_tolerations"] = spec.gpu_tolerations()
    if spec.services.serving:  # the Gateway gateway.py creates; where its proxies run
        kubernetes.update(gateway=GATEWAY, proxy_namespace=PROXY_NAMESPACE)
    document: dict[str, Any] = {
        "name": spec.name,
        "home": ".mlstack",
        "tracker": {"adapter": "mlflow", "tracking_uri": tracking},
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
        "# Outside the cluster, reach MLflow through the API server (the deployers' Role\n"
        f"# mlstack-deployer-mlflow in {NAMESPACE} may port-forward); pods in the cluster leave\n"
        f"# {MLFLOW_URI_ENV} unset:\n"
        f"#   kubectl -n {NAMESPACE} port-forward svc/{MLFLOW_SERVICE} "
        f"{MLFLOW_PORT}:{MLFLOW_PORT} &\n"
        f"#   export {MLFLOW_URI_ENV}=http://127.0.0.1:{MLFLOW_PORT}\n"
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
    if spec.services.serving:
        header += (
            "# server.kubernetes.image is yours to add, in your registry, before building the\n"
            '# images (docs/serving.md): image: "REGISTRY/mlstack-endpoint:{model}-v{version}"\n'
        )
    if spec.services.serving and spec.gpu_pools:
        header += (
            "# Endpoints run on CPU nodes; one that needs a GPU says so under\n"
            "# server.kubernetes: endpoints: {NAME: {gpus: 1}} (it then runs on the GPU pools)\n"
        )
    document = stack_document(spec, database_host=database_host)
    return header + yaml.safe_dump(document, sort_keys=False)
