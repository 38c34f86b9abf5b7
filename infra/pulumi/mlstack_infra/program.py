"""The Pulumi program: the spec from the stack's config, the cluster of its target, the
services on it, and the outputs that point mlstack at it. A function of its config; nothing
is created at import."""

from __future__ import annotations

from typing import Literal

import pulumi

from mlstack_infra import access
from mlstack_infra.common import ClusterOutputs, child
from mlstack_infra.services import MlstackServices
from mlstack_infra.spec import InfraSpec, SpecError, parse_spec


def main() -> None:
    config = pulumi.Config("mlstack")
    spec = parse_spec(
        config.require_object("spec"), where=f"Pulumi.{pulumi.get_stack()}.yaml: mlstack:spec"
    )
    kubeconfig = config.get_secret("kubeconfig")
    if spec.target == "onprem" and kubeconfig is None:
        raise SpecError(
            "target onprem needs the existing cluster's kubeconfig, as a secret: "
            'pulumi config set --secret mlstack:kubeconfig "$(cat ~/.kube/config)"'
        )
    stage = config.get("stage") or "all"
    if stage not in STAGES:
        raise SpecError(
            f"Pulumi.{pulumi.get_stack()}.yaml: mlstack:stage: {stage!r} is not one of "
            f"{', '.join(STAGES)} (`cluster`: the cloud resources only, for a first apply from "
            "outside a private API endpoint's network)"
        )
    build(spec, kubeconfig=kubeconfig, stage=stage)  # type: ignore[arg-type]


#: `mlstack:stage`: `cluster` creates the cloud resources only (nothing that talks to the
#: Kubernetes API); `all` (the default) the services on it too, run where the API is reached.
STAGES = ("all", "cluster")


def build(
    spec: InfraSpec,
    *,
    kubeconfig: pulumi.Output[str] | None = None,
    stage: Literal["all", "cluster"] = "all",
) -> MlstackServices | None:
    """Declare `spec`'s cluster and, unless `stage` is `cluster`, the services on it; export
    the outputs (`mlstack`, the stack file, only with the services)."""
    name = spec.name
    minio_key: pulumi.Output[str] | None = None
    cluster: ClusterOutputs
    if spec.target == "aws":
        from mlstack_infra.aws import AwsGpuCluster

        eks = AwsGpuCluster(name, spec)
        cluster = eks.outputs()
        access.eks_access_entries(name, spec, eks.cluster.name, child(eks))
    elif spec.target == "gcp":
        from mlstack_infra.gcp import GcpGpuCluster

        gke = GcpGpuCluster(name, spec)
        cluster = gke.outputs()
        access.gke_cluster_viewers(name, spec, child(gke))
    elif spec.target == "azure":
        from mlstack_infra.azure import AzureGpuCluster

        cluster = AzureGpuCluster(name, spec).outputs()
    else:
        from mlstack_infra.onprem import OnPremCluster

        if kubeconfig is None:
            raise SpecError("target onprem needs the existing cluster's kubeconfig")
        onprem = OnPremCluster(name, spec, kubeconfig)
        cluster = onprem.outputs()
        minio_key = onprem.minio_key.result
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("database_password", pulumi.Output.secret(cluster.database_password))
    pulumi.export("artifact_root", cluster.artifact_root)
    if stage == "cluster":
        return None
    services = MlstackServices(name, spec, cluster, minio_key=minio_key)
    if spec.services.serving:
        access.prediction_log_secret(
            name,
            cluster.database_host,
            cluster.database_password,
            child(services, provider=services.provider, depends_on=[services.services]),
        )
    pulumi.export("mlstack", pulumi.Output.secret(MlstackServices.stack_yaml(spec, cluster)))
    return services
