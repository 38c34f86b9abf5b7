"""The Terraform twin of mlstack_infra/access.py: the deployers' cloud principals (EKS
access entries in `deployers.group`, GKE clusterViewer IAM members) and the endpoints'
`prediction-log` Secret, built from the database's tokens (the password never written in
the configuration). The Role, RoleBinding and ServiceAccount come with the rendered
services, the same objects the Pulumi program applies."""

from __future__ import annotations

from typing import Any

from cdktn import Fn, TerraformStack
from mlstack_infra.access import (
    GKE_CLUSTER_VIEWER,
    PREDICTION_LOG_DATABASE,
    PREDICTION_LOG_KEY,
    PREDICTION_LOG_SECRET,
)
from mlstack_infra.manifests import DATABASE_USER, SERVING
from mlstack_infra.spec import InfraSpec


def eks_access_entries(stack: TerraformStack, spec: InfraSpec, cluster_name: str) -> None:
    """An access entry per `deployers.aws_principals` ARN, in `deployers.group`, no policy."""
    from cdktn_provider_aws.eks_access_entry import EksAccessEntry

    for index, arn in enumerate(spec.deployers.aws_principals):
        EksAccessEntry(
            stack,
            f"{spec.name}-deployer-{index}",
            cluster_name=cluster_name,
            principal_arn=arn,
            kubernetes_groups=[spec.deployers.group],
            type="STANDARD",
        )


def gke_cluster_viewers(stack: TerraformStack, spec: InfraSpec) -> None:
    """roles/container.clusterViewer on the project per `deployers.gcp_members` member."""
    from cdktn_provider_google.project_iam_member import ProjectIamMember

    for index, member in enumerate(spec.deployers.gcp_members):
        ProjectIamMember(
            stack,
            f"{spec.name}-deployer-{index}",
            project=str(spec.project),
            role=GKE_CLUSTER_VIEWER,
            member=member,
        )


def prediction_log_secret(
    stack: TerraformStack,
    spec: InfraSpec,
    *,
    database_host: str,
    database_password: str,
    depends_on: list[Any],
) -> None:
    """The `prediction-log` Secret in the serving namespace (`depends_on`: what creates it)."""
    from cdktn_provider_kubernetes.secret_v1 import SecretV1

    password = Fn.urlencode(database_password)
    url = f"postgresql://{DATABASE_USER}:{password}@{database_host}:5432/{PREDICTION_LOG_DATABASE}"
    SecretV1(
        stack,
        f"{spec.name}-prediction-log",
        metadata={"name": PREDICTION_LOG_SECRET, "namespace": SERVING},
        data={PREDICTION_LOG_KEY: url},
        depends_on=depends_on,
    )
