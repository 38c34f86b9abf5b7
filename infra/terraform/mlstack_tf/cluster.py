"""What each cloud layer hands to the services layer, as Terraform expressions (tokens that
Terraform resolves at apply time), and the helpers every layer shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClusterParts:
    """A cluster ready for the services. `kubernetes` is the kubernetes/helm provider's
    connection (host, CA, exec auth: nothing long-lived); every other value may be a token."""

    kubernetes: dict[str, Any]
    kubeconfig: str
    artifact_root: str
    database_host: str
    database_password: str
    identity_annotations: dict[str, str]
    artifact_env: dict[str, str] = field(default_factory=dict)
    device_plugin: bool = True
    in_cluster_manifests: list[dict[str, Any]] = field(default_factory=list)
    #: On-prem: MinIO's generated key (its Secret is created with the database's).
    minio_key: str | None = None
    #: The Secret with the artifact store's S3 keys (on-prem MinIO's), read by reference.
    artifact_secret: str | None = None
    #: Resources the services must wait for (node pools: pods need somewhere to run).
    depends_on: list[Any] = field(default_factory=list)


def exec_auth(command: str, args: list[str]) -> dict[str, Any]:
    return {
        "api_version": "client.authentication.k8s.io/v1beta1",
        "command": command,
        "args": args,
    }


_MAPS = ("tags", "labels")  # free-form maps: their keys are data, not field names


def blocks(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Repeated blocks (a list of structs) for a binding: jsii converts a Python dict to a
    struct only where it is passed alone, so items of a list are given by their jsii
    (camelCase) field names."""

    def camel(value: Any, key: str = "") -> Any:
        if isinstance(value, dict) and key not in _MAPS:
            return {_camel(k): camel(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [camel(v) for v in value]
        return value

    return [camel(item) for item in items]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
