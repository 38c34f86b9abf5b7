"""A program's security posture, in one form whichever renderer declared it: the resources
that matter for security (cluster, node pools, bucket, database, ingress, workload
identities, static keys, the Kubernetes objects), each by its role in the stack and with its
security-relevant settings only.

Two readers make it: `from_pulumi` (the resources Pulumi's mocks record, type tokens and
camelCase inputs) and `from_terraform` (the JSON the CDK Terrain app synthesizes, snake_case
attributes, `${...}` expressions where values are known at apply time). The policy rules
(policies.py) judge this form, and the drift test holds the two readers' answers equal per
target. No Pulumi here: the Terraform side imports it too."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mlstack_infra.cloud import TAINT_EFFECTS
from mlstack_infra.manifests import AZURE_USE_IDENTITY

_EFFECT_NAMES = {upper: name for name, upper in TAINT_EFFECTS.items()}
KFP = "kubeflow-pipelines"  # the one release/directory that is KFP, not mlstack's objects


@dataclass(frozen=True, order=True)
class Item:
    """One resource's security-relevant settings. `kind` is one of cluster, node_pool,
    bucket, database, ingress, identity, static_key, kubernetes, addon, network; `name` its role
    (`artifacts`, a pool's name, a Kubernetes object as `Kind namespace/name`)."""

    kind: str
    name: str
    settings: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.settings).get(key, default)


def item(kind: str, name: str, **settings: Any) -> Item:
    return Item(kind, name, tuple(sorted((k, _freeze(v)) for k, v in settings.items())))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


class DeclaredLike(Protocol):
    """What Pulumi's mocks record of a resource (policies.Declared)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...


def _one(value: Any) -> Any:
    """A Terraform block given once: a dict, or a list of one (either is valid JSON)."""
    if isinstance(value, list):
        return value[0] if value else {}
    return value if value is not None else {}


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = _one(value).get(key) if isinstance(_one(value), Mapping) else None
        if value is None:
            return None
    return value


def _json(text: Any) -> Any:
    """A JSON document that may carry Terraform expressions (`"${replace(x, "a", "")}:sub"`)."""
    if not isinstance(text, str):
        return text or {}
    return json.loads(re.sub(r"\$\{[^}]*\}", "EXPR", text))


def _taints(taints: Iterable[Any]) -> tuple[str, ...]:
    """`key=value:Effect`, whatever the cloud's spelling (dicts, upper snake effects, strings)."""
    found = []
    for taint in taints or ():
        if isinstance(taint, str):
            found.append(taint)
            continue
        effect = _EFFECT_NAMES.get(taint.get("effect"), taint.get("effect"))
        found.append(f"{taint['key']}={taint.get('value') or ''}:{effect}")
    return tuple(sorted(found))


def _pool(labels: Mapping[str, str], **settings: Any) -> Item:
    return item(
        "node_pool",
        labels.get("mlstack.io/pool", "?"),
        labels=dict(labels),
        **{**settings, "taints": _taints(settings.get("taints") or ())},
    )


def _subjects(policy: Any) -> Iterator[str]:
    for statement in _json(policy).get("Statement", []):
        if statement.get("Action") == "sts:AssumeRoleWithWebIdentity":
            yield from statement.get("Condition", {}).get("StringEquals", {}).values()


def _gcp_subject(member: str) -> str | None:
    found = re.match(r"^serviceAccount:[^\[]+\.svc\.id\.goog\[([^/]+)/([^\]]+)\]$", member)
    return f"system:serviceaccount:{found[1]}:{found[2]}" if found else None


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


def kubernetes_items(objects: Iterable[Mapping[str, Any]]) -> list[Item]:
    """Kubernetes objects: what they are, and the settings that open or identify them."""
    found = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        settings: dict[str, Any] = {"object_name": meta.get("name")}
        if obj.get("kind") == "Service":
            settings["type"] = (obj.get("spec") or {}).get("type", "ClusterIP")
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


Of = Callable[[str], list[Mapping[str, Any]]]

#: pulumi_aws and pulumi_gcp are bridged from the Terraform providers: the same resources and
#: attributes, in camelCase, with list blocks in the plural. Read them as Terraform's.
_BRIDGED = {
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/route:Route": "aws_route",
    "gcp:compute/routerNat:RouterNat": "google_compute_router_nat",
    "aws:eks/cluster:Cluster": "aws_eks_cluster",
    "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
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
}
_SINGULAR = {"taints": "taint", "guest_accelerators": "guest_accelerator"}


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

    found = _aws_gcp(lambda kind: list((bridged.get(kind) or {}).values()), bridged)
    found += _azure_native(of)
    objects = [
        {**r.inputs, "kind": r.type.rsplit(":", 1)[1], "apiVersion": "v1"}
        for r in resources
        if r.type in ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:Secret")
    ]
    for group in of("kubernetes:yaml/v2:ConfigGroup"):
        objects += list(group.get("objs") or [])
    found += kubernetes_items(objects)
    found += [item("addon", KFP) for _ in of("kubernetes:kustomize/v2:Directory")]
    return sorted(found)


def from_terraform(config: Mapping[str, Any]) -> list[Item]:
    """The posture of a synthesized Terraform JSON configuration (`cdk.tf.json`)."""
    resources: Mapping[str, Mapping[str, Any]] = config.get("resource") or {}

    def of(kind: str) -> list[Mapping[str, Any]]:
        return list((resources.get(kind) or {}).values())

    found = _aws_gcp(of, resources) + _azurerm(of)
    objects: list[Mapping[str, Any]] = [
        {"kind": "Namespace", "metadata": _one(ns.get("metadata"))}
        for ns in of("kubernetes_namespace_v1")
    ]
    objects += [
        {"kind": "Secret", "metadata": _one(s.get("metadata"))} for s in of("kubernetes_secret_v1")
    ]
    for release in of("helm_release"):
        if release.get("name") == KFP:
            found.append(item("addon", KFP))
            continue
        for values in release.get("values") or []:
            objects += json.loads(values).get("objects", [])
    found += kubernetes_items(objects)
    return sorted(found)


def _aws_gcp(of: Of, resources: Mapping[str, Mapping[str, Any]]) -> list[Item]:
    """AWS and GCP, read from Terraform's attributes (Pulumi's bridged ones translated)."""
    found: list[Item] = []
    subnets = of("aws_subnet")
    for eks in of("aws_eks_cluster"):
        vpc = _one(eks.get("vpc_config"))
        found.append(
            item(
                "cluster",
                "cluster",
                private_endpoint=not vpc.get("endpoint_public_access"),
                api_access_cidrs=sorted(vpc.get("public_access_cidrs") or []),
                private_nodes=all(s.get("map_public_ip_on_launch") is False for s in subnets),
                workload_identity=bool(of("aws_iam_openid_connect_provider")),
                secrets_encrypted="secrets" in (_dig(eks, "encryption_config", "resources") or []),
            )
        )
    if of("aws_eks_cluster"):  # how the private nodes reach out (spec `egress`)
        found.append(
            item(
                "network",
                "egress",
                nat_gateways=len(of("aws_nat_gateway")),
                default_routes=sorted(
                    "nat_gateway" if r.get("nat_gateway_id") else "internet_gateway"
                    for r in of("aws_route")
                    if r.get("destination_cidr_block") == "0.0.0.0/0"
                ),
            )
        )
    for group in of("aws_eks_node_group"):
        scaling = _one(group.get("scaling_config"))
        found.append(
            _pool(
                group.get("labels") or {},
                machine_type=(group.get("instance_types") or [None])[0],
                min_size=scaling.get("min_size"),
                max_size=scaling.get("max_size"),
                initial_size=scaling.get("desired_size"),
                spot=group.get("capacity_type") == "SPOT",
                image=group.get("ami_type"),
                taints=group.get("taint"),
            )
        )
    blocks = ("block_public_acls", "block_public_policy", "ignore_public_acls")
    for _ in of("aws_s3_bucket"):
        blocked = any(
            all(b.get(k) is True for k in (*blocks, "restrict_public_buckets"))
            for b in of("aws_s3_bucket_public_access_block")
        )
        found.append(
            item(
                "bucket",
                "artifacts",
                public_access="blocked" if blocked else "open",
                encrypted=bool(of("aws_s3_bucket_server_side_encryption_configuration")),
                versioned=any(
                    _dig(v, "versioning_configuration", "status") == "Enabled"
                    for v in of("aws_s3_bucket_versioning")
                ),
            )
        )
    for db in of("aws_db_instance"):
        found.append(
            item(
                "database",
                "database",
                public=db.get("publicly_accessible") is not False,
                encrypted=db.get("storage_encrypted") is True,
                deletion_protection=db.get("deletion_protection") is True,
            )
        )
    for group in of("aws_security_group"):
        for rule in group.get("ingress") or []:
            found.append(
                item(
                    "ingress",
                    "database",
                    cidrs=sorted(rule.get("cidr_blocks") or []),
                    ports=(rule.get("from_port"), rule.get("to_port")),
                )
            )
    for role in of("aws_iam_role"):
        found += [
            item("identity", s, via="irsa") for s in _subjects(role.get("assume_role_policy"))
        ]

    for gke in of("google_container_cluster"):
        private = _one(gke.get("private_cluster_config"))
        networks = _dig(gke, "master_authorized_networks_config", "cidr_blocks") or []
        found.append(
            item(
                "cluster",
                "cluster",
                private_endpoint=bool(private.get("enable_private_endpoint")),
                api_access_cidrs=sorted(n["cidr_block"] for n in networks),
                private_nodes=bool(private.get("enable_private_nodes")),
                workload_identity=bool(_dig(gke, "workload_identity_config", "workload_pool")),
                network_policy=gke.get("datapath_provider") == "ADVANCED_DATAPATH",
            )
        )
    if of("google_container_cluster"):
        found.append(
            item(
                "network",
                "egress",
                cloud_nat=sorted(
                    str(n.get("source_subnetwork_ip_ranges_to_nat"))
                    for n in of("google_compute_router_nat")
                ),
            )
        )
    for pool in of("google_container_node_pool"):
        config = _one(pool.get("node_config"))
        autoscaling = _one(pool.get("autoscaling"))
        found.append(
            _pool(
                config.get("labels") or {},
                machine_type=config.get("machine_type"),
                min_size=autoscaling.get("min_node_count"),
                max_size=autoscaling.get("max_node_count"),
                initial_size=pool.get("initial_node_count"),
                spot=bool(config.get("spot")),
                accelerators=[
                    (
                        a.get("type"),
                        a.get("count"),
                        _dig(a, "gpu_driver_installation_config", "gpu_driver_version"),
                    )
                    for a in config.get("guest_accelerator") or []
                ],
                metadata=_dig(config, "workload_metadata_config", "mode"),
                taints=config.get("taint"),
            )
        )
    for bucket in of("google_storage_bucket"):
        found.append(
            item(
                "bucket",
                "artifacts",
                public_access="blocked"
                if bucket.get("public_access_prevention") == "enforced"
                else "open",
                encrypted=True,
                versioned=bool(_dig(bucket, "versioning", "enabled")),
                uniform_access=bool(bucket.get("uniform_bucket_level_access")),
            )
        )
    for db in of("google_sql_database_instance"):
        ip = _dig(db, "settings", "ip_configuration") or {}
        ip = _one(ip)
        found.append(
            item(
                "database",
                "database",
                public=ip.get("ipv4_enabled") is not False,
                encrypted=True,
                ssl_only=ip.get("ssl_mode") == "ENCRYPTED_ONLY",
                deletion_protection=db.get("deletion_protection") is True,
            )
        )
    for member in of("google_service_account_iam_member"):
        subject = _gcp_subject(str(member.get("member")))
        if member.get("role") == "roles/iam.workloadIdentityUser" and subject:
            found.append(item("identity", subject, via="workload-identity"))

    for kind in ("aws_iam_access_key", "google_service_account_key"):
        found += [item("static_key", name) for name in resources.get(kind) or {}]
    return found


def _azurerm(of: Of) -> list[Item]:
    """Azure as the azurerm Terraform provider declares it."""
    found: list[Item] = []
    pools = of("azurerm_kubernetes_cluster_node_pool")
    for aks in of("azurerm_kubernetes_cluster"):
        system = {**_one(aks.get("default_node_pool")), "mode": "System"}
        profiles = [system, *pools]
        found.append(
            item(
                "cluster",
                "cluster",
                private_endpoint=bool(aks.get("private_cluster_enabled")),
                network_policy=_dig(aks, "network_profile", "network_policy") is not None,
                api_access_cidrs=sorted(
                    _dig(aks, "api_server_access_profile", "authorized_ip_ranges") or []
                ),
                private_nodes=all(p.get("node_public_ip_enabled") is False for p in profiles),
                workload_identity=bool(
                    aks.get("workload_identity_enabled") and aks.get("oidc_issuer_enabled")
                ),
            )
        )
        for pool in profiles:
            found.append(
                _pool(
                    pool.get("node_labels") or {},
                    machine_type=pool.get("vm_size"),
                    min_size=pool.get("min_count"),
                    max_size=pool.get("max_count"),
                    initial_size=pool.get("node_count"),
                    spot=pool.get("priority") == "Spot",
                    mode=pool.get("mode"),
                    taints=pool.get("node_taints"),
                )
            )
    containers = of("azurerm_storage_container")
    for account in of("azurerm_storage_account"):
        private = account.get("allow_nested_items_to_be_public") is False and all(
            c.get("container_access_type", "private") == "private" for c in containers
        )
        found.append(
            item(
                "bucket",
                "artifacts",
                public_access="blocked" if private else "open",
                # blobs are always encrypted at rest by azurerm; TLS 1.2 in transit is the choice
                encrypted=account.get("min_tls_version") == "TLS1_2",
                https_only=account.get("https_traffic_only_enabled") is True,
                account=account.get("name"),
                shared_key=account.get("shared_access_key_enabled") is not False,
            )
        )
    for db in of("azurerm_postgresql_flexible_server"):
        found.append(
            item(
                "database",
                "database",
                public=db.get("public_network_access_enabled") is not False,
                encrypted=True,
                private_network=bool(
                    db.get("delegated_subnet_id") and db.get("private_dns_zone_id")
                ),
            )
        )
    for vnet in of("azurerm_virtual_network"):
        found.append(
            _azure_network(
                vnet.get("address_space") or [],
                [
                    (p, _dig(s, "delegation", "service_delegation", "name"))
                    for s in of("azurerm_subnet")
                    for p in s.get("address_prefixes") or []
                ],
                [z.get("name") for z in of("azurerm_private_dns_zone")],
                len(of("azurerm_private_dns_zone_virtual_network_link")),
            )
        )
    for credential in of("azurerm_federated_identity_credential"):
        found.append(item("identity", str(credential.get("subject")), via="federated-credential"))

    return found


def _azure_network(
    space: Iterable[str], subnets: Iterable[tuple[Any, Any]], zones: Iterable[Any], links: int
) -> Item:
    """The AKS cluster's network: its subnets (each with the service it is delegated to, if
    any) and the private DNS zones linked to it."""
    return item(
        "network",
        "vnet",
        address_space=sorted(space),
        subnets=sorted((str(prefix), str(service or "")) for prefix, service in subnets),
        dns_zones=sorted(str(z) for z in zones),
        dns_links=links,
    )


def _azure_native(of: Callable[..., list[Mapping[str, Any]]]) -> list[Item]:
    """Azure as pulumi_azure_native declares it (ARM's own shapes, not a Terraform bridge)."""
    found: list[Item] = []
    agent_pools = of("azure-native:containerservice:AgentPool")
    for aks in of("azure-native:containerservice:ManagedCluster"):
        access = aks.get("apiServerAccessProfile") or {}
        profiles = list(aks.get("agentPoolProfiles") or []) + agent_pools
        found.append(
            item(
                "cluster",
                "cluster",
                private_endpoint=bool(access.get("enablePrivateCluster")),
                network_policy=(aks.get("networkProfile") or {}).get("networkPolicy") is not None,
                api_access_cidrs=sorted(access.get("authorizedIPRanges") or []),
                private_nodes=all(p.get("enableNodePublicIP") is False for p in profiles),
                workload_identity=bool(
                    ((aks.get("securityProfile") or {}).get("workloadIdentity") or {}).get(
                        "enabled"
                    )
                    and (aks.get("oidcIssuerProfile") or {}).get("enabled")
                ),
            )
        )
        for pool in profiles:
            found.append(
                _pool(
                    pool.get("nodeLabels") or {},
                    machine_type=pool.get("vmSize"),
                    min_size=pool.get("minCount"),
                    max_size=pool.get("maxCount"),
                    initial_size=pool.get("count"),
                    spot=pool.get("scaleSetPriority") == "Spot",
                    mode=pool.get("mode"),
                    taints=pool.get("nodeTaints"),
                )
            )
    containers = of("azure-native:storage:BlobContainer")
    for account in of("azure-native:storage:StorageAccount"):
        blob = ((account.get("encryption") or {}).get("services") or {}).get("blob") or {}
        private = account.get("allowBlobPublicAccess") is False and all(
            c.get("publicAccess", "None") == "None" for c in containers
        )
        found.append(
            item(
                "bucket",
                "artifacts",
                public_access="blocked" if private else "open",
                encrypted=blob.get("enabled") is True
                and account.get("minimumTlsVersion") == "TLS1_2",
                https_only=account.get("enableHttpsTrafficOnly") is True,
                account=account.get("accountName"),
                shared_key=account.get("allowSharedKeyAccess") is not False,
            )
        )
    for db in of("azure-native:dbforpostgresql:Server"):
        network = db.get("network") or {}
        found.append(
            item(
                "database",
                "database",
                public=network.get("publicNetworkAccess") != "Disabled",
                encrypted=True,
                private_network=bool(
                    network.get("delegatedSubnetResourceId")
                    and network.get("privateDnsZoneArmResourceId")
                ),
            )
        )
    for vnet in of("azure-native:network:VirtualNetwork"):
        found.append(
            _azure_network(
                (vnet.get("addressSpace") or {}).get("addressPrefixes") or [],
                [
                    (s.get("addressPrefix"), ((s.get("delegations") or [{}])[0]).get("serviceName"))
                    for s in of("azure-native:network:Subnet")
                ],
                [z.get("privateZoneName") for z in of("azure-native:privatedns:PrivateZone")],
                len(of("azure-native:privatedns:VirtualNetworkLink")),
            )
        )
    for credential in of("azure-native:managedidentity:FederatedIdentityCredential"):
        found.append(item("identity", str(credential.get("subject")), via="federated-credential"))

    return found
