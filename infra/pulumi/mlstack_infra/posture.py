"""A program's security posture, in one form whichever renderer declared it: the resources
that matter for security (cluster, node pools, bucket, database, ingress, workload
identities, static keys, the Kubernetes objects), each by its role in the stack and with its
security-relevant settings only.

Two readers make it: `from_pulumi` (the resources Pulumi's mocks record, type tokens and
camelCase inputs) and `from_terraform` (the JSON the CDK Terrain app synthesizes, snake_case
attributes, `${...}` expressions where values are known at apply time). The policy rules
(policies.py) judge this form, and the drift test holds the two readers' answers equal per
target. No Pulumi here: the Terraform side imports it too.

Each cloud's reader is a module of its own (posture_aws.py, posture_gcp.py, posture_azure.py,
as the programs are); the form and the helpers they share are posture_items.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mlstack_infra import gateway, posture_aws, posture_azure, posture_gcp
from mlstack_infra.manifests import AZURE_USE_IDENTITY
from mlstack_infra.posture_items import DeclaredLike, Item, item, one

__all__ = [
    "KFP",
    "Item",
    "from_pulumi",
    "from_terraform",
    "item",
    "kubernetes_items",
    "pod_template",
]

KFP = "kubeflow-pipelines"  # the one release/directory that is KFP, not mlstack's objects


def pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod template of a workload (Deployment, StatefulSet, DaemonSet, Job, CronJob)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    return template if isinstance(template, Mapping) else None


def _run_as(pod: Mapping[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    """Each container's (name, runAsNonRoot, runAsUser), the pod's values where it sets none."""
    context = pod.get("securityContext") or {}
    found = []
    for container in pod.get("containers") or []:
        own = container.get("securityContext") or {}
        found.append(
            (
                container.get("name"),
                own.get("runAsNonRoot", context.get("runAsNonRoot")),
                own.get("runAsUser", context.get("runAsUser")),
            )
        )
    return tuple(found)


def _peer(peer: Mapping[str, Any]) -> str:
    """One source of an ingress rule, in words: `cidr:C`, `namespace:N`, `namespaces:all`,
    `namespaces:selected`, with `+pods:all`/`+pods:selected`, `pods:all` (the policy's own
    namespace), or `any` for an empty peer."""
    if "ipBlock" in peer:
        return f"cidr:{(peer.get('ipBlock') or {}).get('cidr')}"
    words = []
    if "namespaceSelector" in peer:
        selector = peer.get("namespaceSelector") or {}
        name = (selector.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
        if not selector:
            words.append("namespaces:all")
        elif (
            name
            and len(selector.get("matchLabels") or {}) == 1
            and "matchExpressions" not in selector
        ):
            words.append(f"namespace:{name}")
        else:
            words.append("namespaces:selected")
    if "podSelector" in peer:
        words.append("pods:all" if not peer.get("podSelector") else "pods:selected")
    return "+".join(words) or "any"


def _port(port: Any) -> str:
    return str(int(port)) if isinstance(port, float) and port.is_integer() else str(port)


def _ingress(spec: Mapping[str, Any]) -> tuple[tuple[tuple[str, ...], tuple[Any, ...]], ...]:
    """Each ingress rule of a NetworkPolicy's spec as (its sources, its ports); `any` where a
    rule names no source (it admits every one)."""
    rules = []
    for rule in spec.get("ingress") or []:
        peers = tuple(sorted(_peer(p) for p in rule.get("from") or [])) or ("any",)
        # Pulumi's inputs carry numbers as floats (5000.0): a port is read as Terraform's
        ports = tuple(sorted(_port(p.get("port")) for p in rule.get("ports") or []))
        rules.append((peers, ports))
    return tuple(rules)


def kubernetes_items(objects: Iterable[Mapping[str, Any]]) -> list[Item]:
    """Kubernetes objects: what they are, and the settings that open or identify them."""
    found = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        settings: dict[str, Any] = {"object_name": meta.get("name")}
        if obj.get("kind") == "Service":
            settings["type"] = (obj.get("spec") or {}).get("type", "ClusterIP")
        if obj.get("kind") == "NetworkPolicy":
            spec = obj.get("spec") or {}
            settings["pod_selector"] = dict(
                (spec.get("podSelector") or {}).get("matchLabels") or {}
            )
            settings["policy_types"] = sorted(spec.get("policyTypes") or ["Ingress"])
            settings["ingress"] = _ingress(spec)
        if obj.get("kind") == "EnvoyProxy":  # the Service of the proxies it shapes
            provider = (obj.get("spec") or {}).get("provider") or {}
            service = (provider.get("kubernetes") or {}).get("envoyService") or {}
            settings["type"] = service.get("type", "LoadBalancer")  # Envoy Gateway's default
        if obj.get("kind") == "ServiceAccount":
            settings["identity"] = sorted(meta.get("annotations") or {})
        template = pod_template(obj)
        if template is not None:
            settings["run_as"] = _run_as(template.get("spec") or {})
            labels = (template.get("metadata") or {}).get("labels") or {}
            settings["azure_identity"] = labels.get(AZURE_USE_IDENTITY) == "true"
        name = f"{obj.get('kind')} {meta.get('namespace') or '-'}/{meta.get('name')}"
        found.append(item("kubernetes", name, **settings))
    return found


#: pulumi_aws and pulumi_gcp are bridged from the Terraform providers: the same resources and
#: attributes, in camelCase, with list blocks in the plural. Read them as Terraform's.
_BRIDGED = {
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/route:Route": "aws_route",
    "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
    "gcp:compute/routerNat:RouterNat": "google_compute_router_nat",
    "gcp:compute/firewall:Firewall": "google_compute_firewall",
    "gcp:compute/subnetwork:Subnetwork": "google_compute_subnetwork",
    "aws:eks/cluster:Cluster": "aws_eks_cluster",
    "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
    "aws:eks/addon:Addon": "aws_eks_addon",
    "aws:eks/accessEntry:AccessEntry": "aws_eks_access_entry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "aws_eks_access_policy_association",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "aws_iam_openid_connect_provider",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "aws_s3_bucket_server_side_encryption_configuration"
    ),
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/accessKey:AccessKey": "aws_iam_access_key",
    "gcp:container/cluster:Cluster": "google_container_cluster",
    "gcp:container/nodePool:NodePool": "google_container_node_pool",
    "gcp:storage/bucket:Bucket": "google_storage_bucket",
    "gcp:sql/databaseInstance:DatabaseInstance": "google_sql_database_instance",
    "gcp:serviceaccount/iAMMember:IAMMember": "google_service_account_iam_member",
    "gcp:serviceaccount/key:Key": "google_service_account_key",
    "gcp:projects/iAMMember:IAMMember": "google_project_iam_member",
}
_SINGULAR = {
    "taints": "taint",
    "guest_accelerators": "guest_accelerator",
    "allows": "allow",
    "denies": "deny",
}


def _as_terraform(value: Any, key: str = "") -> Any:
    """Pulumi's camelCase inputs as Terraform's snake_case attributes (maps of data kept)."""
    if isinstance(value, Mapping) and key not in ("labels", "tags"):
        renamed = {}
        for name, inner in value.items():
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", str(name)).lower()
            renamed[_SINGULAR.get(snake, snake)] = _as_terraform(inner, snake)
        return renamed
    if isinstance(value, list):
        return [_as_terraform(v) for v in value]
    return value


def from_pulumi(resources: Iterable[DeclaredLike]) -> list[Item]:
    """The posture of what the Pulumi program declared (under mocks, or a policy pack's args)."""
    resources = list(resources)
    bridged: dict[str, dict[str, Any]] = {}
    for r in resources:
        if r.type in _BRIDGED:
            bridged.setdefault(_BRIDGED[r.type], {})[r.name] = _as_terraform(r.inputs)

    def of(*types: str) -> list[Mapping[str, Any]]:
        return [r.inputs for r in resources if r.type in types]

    def bridged_of(kind: str) -> list[Mapping[str, Any]]:
        return list((bridged.get(kind) or {}).values())

    found = posture_aws.read(bridged_of, bridged) + posture_gcp.read(bridged_of, bridged)
    found += posture_azure.read_azure_native(of)
    objects = [
        {**r.inputs, "kind": r.type.rsplit(":", 1)[1], "apiVersion": "v1"}
        for r in resources
        if r.type in ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:Secret")
    ]
    for group in of("kubernetes:yaml/v2:ConfigGroup"):
        objects += list(group.get("objs") or [])
    found += kubernetes_items(objects)
    found += [item("addon", KFP) for _ in of("kubernetes:kustomize/v2:Directory")]
    found += [item("addon", gateway.CRDS_RELEASE) for _ in of("kubernetes:helm.sh/v4:Chart")]
    found += [
        item("addon", str(release.get("name")))
        for release in of("kubernetes:helm.sh/v3:Release")
        if release.get("name") == gateway.RELEASE
    ]
    return sorted(found)


def from_terraform(config: Mapping[str, Any]) -> list[Item]:
    """The posture of a synthesized Terraform JSON configuration (`cdk.tf.json`)."""
    resources: Mapping[str, Mapping[str, Any]] = config.get("resource") or {}

    def of(kind: str) -> list[Mapping[str, Any]]:
        return list((resources.get(kind) or {}).values())

    found = posture_aws.read(of, resources) + posture_gcp.read(of, resources)
    found += posture_azure.read_azurerm(of)
    objects: list[Mapping[str, Any]] = [
        {"kind": "Namespace", "metadata": one(ns.get("metadata"))}
        for ns in of("kubernetes_namespace_v1")
    ]
    objects += [
        {"kind": "Secret", "metadata": one(s.get("metadata"))} for s in of("kubernetes_secret_v1")
    ]
    for release in of("helm_release"):
        if release.get("name") in (KFP, gateway.RELEASE, gateway.CRDS_RELEASE):
            found.append(item("addon", str(release.get("name"))))
            continue
        for values in release.get("values") or []:
            objects += json.loads(values).get("objects", [])
    found += kubernetes_items(objects)
    return sorted(found)
