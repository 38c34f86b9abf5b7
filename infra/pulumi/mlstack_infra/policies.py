"""Secure-by-default rules, as functions over the resources a program declares (the type
token and inputs Pulumi's mocks record, or a policy pack's resource args). Each returns the
violations it finds; the tests call them on every target, and on resources built to break
them so each rule is seen to fail."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Declared:
    type: str  # e.g. "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    name: str
    inputs: Mapping[str, Any]


Rule = Callable[[list[Declared]], list[str]]


def _of(resources: Iterable[Declared], *types: str) -> list[Declared]:
    return [r for r in resources if r.type in types]


def buckets_are_private(resources: list[Declared]) -> list[str]:
    found: list[str] = []
    aws_buckets = _of(resources, "aws:s3/bucket:Bucket")
    blocks = _of(resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    if aws_buckets and not any(all(b.inputs.get(k) is True for k in keys) for b in blocks):
        found.append("an S3 bucket without a public access block that blocks everything")
    for bucket in _of(resources, "gcp:storage/bucket:Bucket"):
        if bucket.inputs.get("publicAccessPrevention") != "enforced":
            found.append(f"GCS bucket {bucket.name} does not enforce public access prevention")
    for account in _of(resources, "azure-native:storage:StorageAccount"):
        if account.inputs.get("allowBlobPublicAccess") is not False:
            found.append(f"storage account {account.name} allows public blobs")
    for container in _of(resources, "azure-native:storage:BlobContainer"):
        if container.inputs.get("publicAccess", "None") != "None":
            found.append(f"blob container {container.name} is public")
    return found


def storage_is_encrypted(resources: list[Declared]) -> list[str]:
    found: list[str] = []
    if _of(resources, "aws:s3/bucket:Bucket") and not _of(
        resources,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ):
        found.append("an S3 bucket without server-side encryption")
    for db in _of(resources, "aws:rds/instance:Instance"):
        if db.inputs.get("storageEncrypted") is not True:
            found.append(f"RDS instance {db.name} is not encrypted")
    for account in _of(resources, "azure-native:storage:StorageAccount"):
        blob = (account.inputs.get("encryption") or {}).get("services", {}).get("blob", {})
        if blob.get("enabled") is not True or account.inputs.get("minimumTlsVersion") != "TLS1_2":
            found.append(f"storage account {account.name} lacks blob encryption or TLS 1.2")
    return found


def databases_are_private(resources: list[Declared]) -> list[str]:
    found: list[str] = []
    for db in _of(resources, "aws:rds/instance:Instance"):
        if db.inputs.get("publiclyAccessible") is not False:
            found.append(f"RDS instance {db.name} is publicly accessible")
    for db in _of(resources, "gcp:sql/databaseInstance:DatabaseInstance"):
        ip = (db.inputs.get("settings") or {}).get("ipConfiguration") or {}
        if ip.get("ipv4Enabled") is not False:
            found.append(f"Cloud SQL instance {db.name} has a public IP")
    for db in _of(resources, "azure-native:dbforpostgresql:Server"):
        if (db.inputs.get("network") or {}).get("publicNetworkAccess") != "Disabled":
            found.append(f"PostgreSQL server {db.name} allows public network access")
    return found


def no_open_ingress(resources: list[Declared], *, serving_public: bool = False) -> list[str]:
    """No 0.0.0.0/0 ingress; the one exception is the serving gateway when it is asked for."""
    found: list[str] = []
    for group in _of(resources, "aws:ec2/securityGroup:SecurityGroup"):
        for rule in group.inputs.get("ingress") or []:
            if "0.0.0.0/0" in (rule.get("cidrBlocks") or []):
                found.append(f"security group {group.name} is open to 0.0.0.0/0")
    for service in _of(resources, "kubernetes:core/v1:Service"):
        if (service.inputs.get("spec") or {}).get("type") == "LoadBalancer":
            gateway = (service.inputs.get("metadata") or {}).get("name") == "mlstack-gateway"
            if not (gateway and serving_public):
                found.append(f"service {service.name} is a public load balancer")
    return found


def cluster_endpoint_is_private(resources: list[Declared]) -> list[str]:
    found: list[str] = []
    for cluster in _of(resources, "aws:eks/cluster:Cluster"):
        vpc = cluster.inputs.get("vpcConfig") or {}
        if vpc.get("endpointPublicAccess") and not vpc.get("publicAccessCidrs"):
            found.append(f"EKS cluster {cluster.name} has a public API endpoint open to all")
    for cluster in _of(resources, "gcp:container/cluster:Cluster"):
        private = cluster.inputs.get("privateClusterConfig") or {}
        if not private.get("enablePrivateNodes"):
            found.append(f"GKE cluster {cluster.name} has public nodes")
        if not private.get("enablePrivateEndpoint") and not cluster.inputs.get(
            "masterAuthorizedNetworksConfig"
        ):
            found.append(f"GKE cluster {cluster.name} has a public endpoint open to all")
    for cluster in _of(resources, "azure-native:containerservice:ManagedCluster"):
        access = cluster.inputs.get("apiServerAccessProfile") or {}
        if not access.get("enablePrivateCluster") and not access.get("authorizedIPRanges"):
            found.append(f"AKS cluster {cluster.name} has a public API server open to all")
    return found


def no_static_keys(resources: list[Declared]) -> list[str]:
    """Workload identity / IRSA, never long-lived cloud keys."""
    banned = ("aws:iam/accessKey:AccessKey", "gcp:serviceaccount/key:Key")
    return [f"static cloud key {r.name} ({r.type})" for r in _of(resources, *banned)]


RULES: dict[str, Rule] = {
    "buckets_are_private": buckets_are_private,
    "storage_is_encrypted": storage_is_encrypted,
    "databases_are_private": databases_are_private,
    "no_open_ingress": no_open_ingress,
    "cluster_endpoint_is_private": cluster_endpoint_is_private,
    "no_static_keys": no_static_keys,
}


def expand(resources: list[Declared]) -> list[Declared]:
    """Kubernetes objects applied through a ConfigGroup, as resources of their own kind (a
    mock records the group alone), so the rules see each Service and Deployment."""
    found = list(resources)
    for group in _of(resources, "kubernetes:yaml/v2:ConfigGroup"):
        for obj in group.inputs.get("objs") or []:
            api, _, version = str(obj["apiVersion"]).rpartition("/")
            kind = f"kubernetes:{api or 'core'}/{version}:{obj['kind']}"
            found.append(Declared(kind, obj["metadata"]["name"], obj))
    return found


def violations(resources: list[Declared], *, serving_public: bool = False) -> dict[str, list[str]]:
    """Every rule's findings over `resources` (ConfigGroups expanded); empty when clean."""
    resources = expand(resources)
    results: dict[str, list[str]] = {}
    for name, rule in RULES.items():
        found = (
            no_open_ingress(resources, serving_public=serving_public)
            if rule is no_open_ingress
            else rule(resources)
        )
        if found:
            results[name] = found
    return results
