"""On-prem's stores inside the cluster: PostgreSQL and MinIO as plain manifests (no Pulumi
here: the Terraform app renders the same objects)."""

from __future__ import annotations

from typing import Any

from mlstack_infra.manifests import (
    DATABASE_USER,
    MINIO_IMAGE,
    MINIO_SECRET,
    NAMESPACE,
    SECRET,
)
from mlstack_infra.spec import InfraSpec

__all__ = ["MINIO_IMAGE", "MINIO_SECRET", "in_cluster_stores"]


def in_cluster_stores(spec: InfraSpec) -> list[dict[str, Any]]:
    """PostgreSQL (a StatefulSet with a volume) and MinIO, each behind a ClusterIP Service."""
    labels = {"app.kubernetes.io/part-of": "mlstack"}

    def stateful(
        name: str, image: str, port: int, args: list[str], env: list[dict[str, Any]], path: str
    ) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": name, **labels}},
                    "spec": {
                        "containers": [
                            {
                                "name": name,
                                "image": image,
                                "args": args,
                                "env": env,
                                "ports": [{"containerPort": port}],
                                "volumeMounts": [{"name": "data", "mountPath": path}],
                                "securityContext": {"allowPrivilegeEscalation": False},
                            }
                        ]
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{spec.database.storage_gb}Gi"}},
                        },
                    }
                ],
            },
        }

    def service(name: str, port: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": name},
                "ports": [{"port": port, "targetPort": port}],
            },
        }

    secret = {"secretKeyRef": {"name": SECRET, "key": "password"}}
    minio_env = [
        {
            "name": "MINIO_ROOT_USER",
            "valueFrom": {"secretKeyRef": {"name": MINIO_SECRET, "key": "access_key"}},
        },
        {
            "name": "MINIO_ROOT_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": MINIO_SECRET, "key": "secret_key"}},
        },
    ]
    return [
        stateful(
            "postgres",
            spec.postgres_image,
            5432,
            [],
            [
                {"name": "POSTGRES_USER", "value": DATABASE_USER},
                {"name": "POSTGRES_PASSWORD", "valueFrom": secret},
                {"name": "POSTGRES_DB", "value": "mlflow"},
                {"name": "PGDATA", "value": "/var/lib/postgresql/data/db"},
            ],
            "/var/lib/postgresql/data",
        ),
        service("postgres", 5432),
        stateful("minio", MINIO_IMAGE, 9000, ["server", "/data"], minio_env, "/data"),
        service("minio", 9000),
    ]
