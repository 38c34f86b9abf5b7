"""Kubeconfigs that get a short-lived token from the cloud's CLI; no Pulumi here (the
Terraform app and the tests import it too)."""

from __future__ import annotations

import json


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
