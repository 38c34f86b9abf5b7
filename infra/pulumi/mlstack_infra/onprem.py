"""On-prem: an existing cluster (its kubeconfig: `pulumi config set --secret kubeconfig …`), with
PostgreSQL and MinIO run inside it. GPU nodes are the cluster's own; the device plugin is
installed for the labels the spec's GPU pools name."""

from __future__ import annotations

import pulumi
import pulumi_random as random

from mlstack_infra.common import DATABASE_USER, ClusterOutputs, child
from mlstack_infra.manifests import NAMESPACE
from mlstack_infra.spec import InfraSpec
from mlstack_infra.stack_output import MINIO_ENDPOINT
from mlstack_infra.stores import MINIO_SECRET, in_cluster_stores

__all__ = ["MINIO_SECRET", "OnPremCluster", "in_cluster_stores"]


class OnPremCluster(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        spec: InfraSpec,
        kubeconfig: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mlstack:infra:OnPremCluster", name, None, opts)
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.password = random.RandomPassword(
            f"{name}-database", length=32, special=False, opts=child(self)
        )
        self.minio_key = random.RandomPassword(
            f"{name}-minio", length=40, special=False, opts=child(self)
        )
        self.spec = spec
        self.register_outputs({})

    def outputs(self) -> ClusterOutputs:
        return ClusterOutputs(
            kubeconfig=self.kubeconfig,
            artifact_root=pulumi.Output.from_input("s3://mlflow/artifacts"),
            database_host=pulumi.Output.from_input(f"postgres.{NAMESPACE}"),
            database_user=DATABASE_USER,
            database_password=self.password.result,
            identity_annotations=pulumi.Output.from_input({}),
            artifact_env={"MLFLOW_S3_ENDPOINT_URL": MINIO_ENDPOINT},
            in_cluster_manifests=in_cluster_stores(self.spec),
            artifact_secret=MINIO_SECRET,
        )
