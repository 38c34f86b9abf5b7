"""What every cloud layer hands to the services layer, and small shared helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from mlstack_infra.kubeconfig import exec_kubeconfig
from mlstack_infra.manifests import DATABASE_USER, DATABASES


@dataclass
class ClusterOutputs:
    """A cluster ready for the services: how to reach it, where artifacts and metadata go,
    and the annotation that gives the services' account its cloud identity (no static keys)."""

    kubeconfig: pulumi.Output[str]
    artifact_root: pulumi.Output[str]
    database_host: pulumi.Output[str]
    database_user: str
    database_password: pulumi.Output[str]
    identity_annotations: pulumi.Output[dict[str, str]]
    artifact_env: dict[str, str] = field(default_factory=dict)
    device_plugin: bool = True
    #: Objects of the cloud layer's own to apply with the services (on-prem stores, EKS's
    #: cluster-autoscaler); an Output when they carry values known only after creation.
    in_cluster_manifests: Any = field(default_factory=list)
    #: The Secret with the artifact store's S3 keys (on-prem MinIO's), read by reference.
    artifact_secret: str | None = None


def child(parent: pulumi.Resource, **extra: object) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **extra)  # type: ignore[arg-type]


# Re-exported: the cloud layers import them from here.
__all__ = ["DATABASES", "DATABASE_USER", "ClusterOutputs", "child", "exec_kubeconfig"]
