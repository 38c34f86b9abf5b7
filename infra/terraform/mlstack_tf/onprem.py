"""On-prem, as the Pulumi program's onprem.py: an existing cluster (reached through the
kubeconfig file named by the `kubeconfig_path` variable), with PostgreSQL and MinIO run in
it; passwords generated."""

from __future__ import annotations

from cdktn import Fn, TerraformStack, TerraformVariable
from cdktn_provider_random.password import Password
from mlstack_infra.manifests import NAMESPACE
from mlstack_infra.spec import InfraSpec
from mlstack_infra.stack_output import MINIO_ENDPOINT
from mlstack_infra.stores import MINIO_SECRET, in_cluster_stores

from mlstack_tf.cluster import ClusterParts


def build(stack: TerraformStack, spec: InfraSpec) -> ClusterParts:
    name = spec.name
    path = TerraformVariable(
        stack,
        "kubeconfig_path",
        type="string",
        default="~/.kube/config",
        description="The existing cluster's kubeconfig file",
    )
    context = TerraformVariable(
        stack,
        "kubeconfig_context",
        type="string",
        default="",
        description="Its context to use (empty: the current one)",
    )
    password = Password(stack, f"{name}-database-password", length=32, special=False)
    minio = Password(stack, f"{name}-minio-key", length=40, special=False)
    return ClusterParts(
        kubernetes={
            "config_path": path.string_value,
            "config_context": context.string_value,  # "" is the current context
        },
        kubeconfig=Fn.file(Fn.pathexpand(path.string_value)),
        artifact_root="s3://mlflow/artifacts",
        database_host=f"postgres.{NAMESPACE}",
        database_password=password.result,
        identity_annotations={},
        artifact_env={"MLFLOW_S3_ENDPOINT_URL": MINIO_ENDPOINT},
        in_cluster_manifests=in_cluster_stores(spec),
        minio_key=minio.result,
        artifact_secret=MINIO_SECRET,
    )
