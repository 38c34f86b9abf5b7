"""The Pulumi program: the spec from the stack's config, the cluster of its target, the
services on it, and the outputs that point mlstack at it. A function of its config; nothing
is created at import."""

from __future__ import annotations

import pulumi

from mlstack_infra.common import ClusterOutputs
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
    build(spec, kubeconfig=kubeconfig)


def build(spec: InfraSpec, *, kubeconfig: pulumi.Output[str] | None = None) -> MlstackServices:
    name = spec.name
    minio_key: pulumi.Output[str] | None = None
    cluster: ClusterOutputs
    if spec.target == "aws":
        from mlstack_infra.aws import AwsGpuCluster

        cluster = AwsGpuCluster(name, spec).outputs()
    elif spec.target == "gcp":
        from mlstack_infra.gcp import GcpGpuCluster

        cluster = GcpGpuCluster(name, spec).outputs()
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
    services = MlstackServices(name, spec, cluster, minio_key=minio_key)
    pulumi.export("mlstack", pulumi.Output.secret(MlstackServices.stack_yaml(spec, cluster)))
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("database_password", pulumi.Output.secret(cluster.database_password))
    pulumi.export("artifact_root", cluster.artifact_root)
    return services
