"""Azure in a program's security posture: AKS and its pools, the VNet with its delegated subnet
and private DNS zone, the storage account, the flexible server and the federated identity,
read from either provider's shapes: azurerm's (Terraform) and azure-native's (ARM's own, not
a Terraform bridge)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlstack_infra.posture_items import Item, Of, dig, item, node_pool, one

#: Where each provider keeps a pool's settings: azurerm's attributes, azure-native's (ARM's).
AZURERM_POOL = {
    "labels": "node_labels",
    "machine_type": "vm_size",
    "min_size": "min_count",
    "max_size": "max_count",
    "initial_size": "node_count",
    "priority": "priority",
    "taints": "node_taints",
}
NATIVE_POOL = {
    "labels": "nodeLabels",
    "machine_type": "vmSize",
    "min_size": "minCount",
    "max_size": "maxCount",
    "initial_size": "count",
    "priority": "scaleSetPriority",
    "taints": "nodeTaints",
}


def _pool(pool: Mapping[str, Any], fields: Mapping[str, str]) -> Item:
    """An AKS pool (the cluster's system profile or an agent pool), `fields` naming where the
    provider keeps each setting."""
    return node_pool(
        pool.get(fields["labels"]) or {},
        machine_type=pool.get(fields["machine_type"]),
        min_size=pool.get(fields["min_size"]),
        max_size=pool.get(fields["max_size"]),
        initial_size=pool.get(fields["initial_size"]),
        spot=pool.get(fields["priority"]) == "Spot",
        mode=pool.get("mode"),
        taints=pool.get(fields["taints"]),
    )


def read_azurerm(of: Of) -> list[Item]:
    """Azure as the azurerm Terraform provider declares it."""
    found: list[Item] = []
    pools = of("azurerm_kubernetes_cluster_node_pool")
    for aks in of("azurerm_kubernetes_cluster"):
        system = {**one(aks.get("default_node_pool")), "mode": "System"}
        profiles = [system, *pools]
        found.append(
            item(
                "cluster",
                "cluster",
                private_endpoint=bool(aks.get("private_cluster_enabled")),
                network_policy=dig(aks, "network_profile", "network_policy") is not None,
                api_access_cidrs=sorted(
                    dig(aks, "api_server_access_profile", "authorized_ip_ranges") or []
                ),
                private_nodes=all(p.get("node_public_ip_enabled") is False for p in profiles),
                workload_identity=bool(
                    aks.get("workload_identity_enabled") and aks.get("oidc_issuer_enabled")
                ),
            )
        )
        found += [_pool(pool, AZURERM_POOL) for pool in profiles]
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
                    (p, dig(s, "delegation", "service_delegation", "name"))
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


def read_azure_native(of: Of) -> list[Item]:
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
        found += [_pool(pool, NATIVE_POOL) for pool in profiles]
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
