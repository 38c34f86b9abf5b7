"""What every cloud layer hands to the services layer, and small shared helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi


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


def child(parent: pulumi.Resource, **extra: object) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **extra)  # type: ignore[arg-type]


DATABASE_USER = "mlstack"
DATABASES = ("mlflow", "feast", "mlstack")


def exec_kubeconfig(
    *, server: str, ca: str, cluster: str, command: str, args: list[str] | None = None
) -> str:
    """A kubeconfig that gets its token from the cloud's CLI (`aws eks get-token`,
    `gke-gcloud-auth-plugin`): nothing long-lived in it."""
    auth: dict[str, object] = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": command,
        "args": args or [],
        "provideClusterInfo": not args,
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca}}
            ],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
            "current-context": cluster,
            "users": [{"name": cluster, "user": {"exec": auth}}],
        }
    )
