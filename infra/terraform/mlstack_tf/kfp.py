"""Kubeflow Pipelines on the Terraform path. The Pulumi program applies KFP's released
kustomize manifests itself; Terraform's kubernetes and helm providers cannot build a
kustomization and KFP publishes no Helm chart, so a Job in the cluster applies the same
released manifests (`kubectl apply -k`, the KFP documentation's own install command)."""

from __future__ import annotations

from typing import Any

from mlstack_infra.manifests import NAMESPACE
from mlstack_infra.spec import InfraSpec

VERSION = "2.5.0"
MANIFESTS = (
    f"https://github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref={VERSION}"
)
CLUSTER_SCOPED = (
    "https://github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources"
    f"?ref={VERSION}"
)
NAME = "kubeflow-pipelines-installer"


def installer(spec: InfraSpec) -> list[dict[str, Any]]:
    """The installer's account (bound to cluster-admin: KFP brings CRDs and cluster roles of
    its own) and the Job that applies the released manifests once."""
    script = (
        f"kubectl apply --server-side -k '{CLUSTER_SCOPED}' && "
        "kubectl wait --for condition=established --timeout=120s "
        "crd/applications.app.k8s.io && "
        f"kubectl apply --server-side -k '{MANIFESTS}'"
    )
    return installer_job(spec, NAME, script)


def installer_job(spec: InfraSpec, name: str, script: str) -> list[dict[str, Any]]:
    """A ServiceAccount `name` in the mlstack namespace bound to cluster-admin (what it
    installs is cluster-wide: CRDs, cluster roles) and the Job `name` that runs `script`
    once in the spec's `installer_image` (kubectl, helm, and git for kustomize's remote
    manifests), pulled only when the node lacks it: a pinned tag or digest does not move."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "mlstack"}
    meta = {"name": name, "namespace": NAMESPACE, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta,
            "spec": {
                "backoffLimit": 3,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "restartPolicy": "OnFailure",
                        "containers": [
                            {
                                "name": "install",
                                "image": spec.installer_image,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["sh", "-c", script],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        },
    ]
