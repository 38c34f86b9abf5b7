"""Azure, as the Pulumi program's azure.py: a private AKS cluster in its own network with GPU
user pools, workload identity for the services, a storage account that allows no public
blobs and no shared keys, and PostgreSQL Flexible Server in a subnet delegated to it, its
name in a private DNS zone linked to the network (public network access disabled)."""

from __future__ import annotations

from typing import Any

from cdktn import Fn, TerraformStack
from cdktn_provider_azurerm.federated_identity_credential import FederatedIdentityCredential
from cdktn_provider_azurerm.kubernetes_cluster import KubernetesCluster
from cdktn_provider_azurerm.kubernetes_cluster_node_pool import KubernetesClusterNodePool
from cdktn_provider_azurerm.postgresql_flexible_server import PostgresqlFlexibleServer
from cdktn_provider_azurerm.postgresql_flexible_server_database import (
    PostgresqlFlexibleServerDatabase,
)
from cdktn_provider_azurerm.private_dns_zone import PrivateDnsZone
from cdktn_provider_azurerm.private_dns_zone_virtual_network_link import (
    PrivateDnsZoneVirtualNetworkLink,
)
from cdktn_provider_azurerm.provider import AzurermProvider
from cdktn_provider_azurerm.resource_group import ResourceGroup
from cdktn_provider_azurerm.role_assignment import RoleAssignment
from cdktn_provider_azurerm.storage_account import StorageAccount
from cdktn_provider_azurerm.storage_container import StorageContainer
from cdktn_provider_azurerm.subnet import Subnet
from cdktn_provider_azurerm.user_assigned_identity import UserAssignedIdentity
from cdktn_provider_azurerm.virtual_network import VirtualNetwork
from cdktn_provider_random.password import Password
from mlstack_infra.cloud import (
    AZURE_DATABASE_SUBNET,
    AZURE_NODES_SUBNET,
    AZURE_VNET,
    POSTGRES_DELEGATION,
    azure_database_zone,
    azure_storage_account,
)
from mlstack_infra.manifests import DATABASE_USER, DATABASES
from mlstack_infra.spec import InfraSpec, NodePool

from mlstack_tf.cluster import ClusterParts, blocks


def _pool(pool: NodePool, subnet: str) -> dict[str, Any]:
    """A pool's settings as the Pulumi program's `_profile` gives them."""
    values: dict[str, Any] = {
        "name": pool.name.replace("-", "")[:12],
        "vm_size": pool.machine_type,
        "vnet_subnet_id": subnet,
        "node_count": pool.min_size,  # a user pool may start at zero (min_size 0)
        "min_count": pool.min_size,
        "max_count": pool.max_size,
        "auto_scaling_enabled": True,
        "node_labels": pool.all_labels(),
        "node_public_ip_enabled": False,
    }
    return values


def build(stack: TerraformStack, spec: InfraSpec) -> ClusterParts:
    name = spec.name
    # shared keys are off on the account: the provider reaches its data plane through Entra ID
    AzurermProvider(stack, "azurerm", features=[{}], storage_use_azuread=True)
    group = ResourceGroup(stack, f"{name}-rg", name=f"{name}-rg", location=spec.region)
    vnet = VirtualNetwork(
        stack,
        f"{name}-vnet",
        name=f"{name}-vnet",
        resource_group_name=group.name,
        location=spec.region,
        address_space=[AZURE_VNET],
    )
    nodes = Subnet(
        stack,
        f"{name}-nodes",
        name="nodes",
        resource_group_name=group.name,
        virtual_network_name=vnet.name,
        address_prefixes=[AZURE_NODES_SUBNET],
    )
    database_subnet = Subnet(
        stack,
        f"{name}-database-subnet",
        name="database",
        resource_group_name=group.name,
        virtual_network_name=vnet.name,
        address_prefixes=[AZURE_DATABASE_SUBNET],
        delegation=blocks(
            [
                {
                    "name": "postgres",
                    "service_delegation": {
                        "name": POSTGRES_DELEGATION,
                        "actions": ["Microsoft.Network/virtualNetworks/subnets/join/action"],
                    },
                }
            ]
        ),
        depends_on=[nodes],  # one subnet change at a time in a network
    )
    zone = PrivateDnsZone(
        stack,
        f"{name}-database-zone",
        name=azure_database_zone(spec),
        resource_group_name=group.name,
    )
    link = PrivateDnsZoneVirtualNetworkLink(
        stack,
        f"{name}-database-zone-link",
        name=f"{name}-database-zone-link",
        private_dns_zone_id=zone.id,
        virtual_network_id=vnet.id,
        registration_enabled=False,
    )
    system, *others = spec.node_pools
    cluster = KubernetesCluster(
        stack,
        f"{name}-aks",
        name=name,
        resource_group_name=group.name,
        location=spec.region,
        dns_prefix=name,
        kubernetes_version=spec.kubernetes_version,
        identity={"type": "SystemAssigned"},
        default_node_pool={**_pool(system, nodes.id), "temporary_name_for_rotation": "rotation"},
        # the pools are the spec's, scaled by AKS's autoscaler (no node auto-provisioning)
        node_provisioning_profile={"mode": "Manual"},
        private_cluster_enabled=not spec.api_access_cidrs,
        api_server_access_profile=(
            {"authorized_ip_ranges": list(spec.api_access_cidrs)} if spec.api_access_cidrs else None
        ),
        oidc_issuer_enabled=True,
        workload_identity_enabled=True,
        local_account_disabled=False,
        # Azure's network policy enforces the serving namespace's only-the-gateway
        network_profile={"network_plugin": "azure", "network_policy": "azure"},
        lifecycle={"ignore_changes": ["default_node_pool[0].node_count"]},
    )
    pools = [
        KubernetesClusterNodePool(
            stack,
            f"{name}-{pool.name}",
            kubernetes_cluster_id=cluster.id,
            mode="User",
            node_taints=[f"{t['key']}={t['value']}:{t['effect']}" for t in pool.taints_on("azure")]
            or None,
            priority="Spot" if pool.spot else None,
            eviction_policy="Delete" if pool.spot else None,
            spot_max_price=-1 if pool.spot else None,
            os_type="Linux",
            lifecycle={"ignore_changes": ["node_count"]},
            **_pool(pool, nodes.id),
        )
        for pool in others
    ]
    # AKS's own identity manages load balancers and routes in a network it did not create
    RoleAssignment(
        stack,
        f"{name}-cluster-network",
        scope=vnet.id,
        role_definition_name="Network Contributor",
        principal_id=cluster.identity.principal_id,
        principal_type="ServicePrincipal",
    )

    account = StorageAccount(
        stack,
        f"{name}-artifacts",
        name=azure_storage_account(spec),
        resource_group_name=group.name,
        location=spec.region,
        account_kind="StorageV2",
        account_tier="Standard",
        account_replication_type="ZRS",
        allow_nested_items_to_be_public=False,
        # the services reach the blobs as their managed identity: no account key works
        shared_access_key_enabled=False,
        https_traffic_only_enabled=True,
        min_tls_version="TLS1_2",
    )
    StorageContainer(
        stack,
        f"{name}-artifacts-container",
        name="mlflow",
        storage_account_id=account.id,
        container_access_type="private",
    )

    password = Password(stack, f"{name}-database-password", length=32, special=False)
    size = spec.database.size or "Standard_B2s"
    database = PostgresqlFlexibleServer(
        stack,
        f"{name}-database",
        name=f"{name}-database",
        resource_group_name=group.name,
        location=spec.region,
        version="16",
        administrator_login=DATABASE_USER,
        administrator_password=password.result,
        sku_name=size if size.startswith(("B_", "GP_", "MO_")) else f"B_{size}",
        storage_mb=max(32, spec.database.storage_gb) * 1024,
        public_network_access_enabled=False,
        delegated_subnet_id=database_subnet.id,
        private_dns_zone_id=zone.id,
        lifecycle={"ignore_changes": ["zone"]},
        # the zone must resolve in the network before the server registers in it
        depends_on=[link],
    )
    for db in DATABASES:
        PostgresqlFlexibleServerDatabase(
            stack,
            f"{name}-{db}",
            name=db,
            server_id=database.id,
            charset="UTF8",
            collation="en_US.utf8",
        )

    # Workload identity: the services' Kubernetes account federates to this identity.
    identity = UserAssignedIdentity(
        stack,
        f"{name}-services",
        name=f"{name}-services",
        resource_group_name=group.name,
        location=spec.region,
    )
    FederatedIdentityCredential(
        stack,
        f"{name}-services-federation",
        name=f"{name}-services-federation",
        user_assigned_identity_id=identity.id,
        issuer=cluster.oidc_issuer_url,
        subject="system:serviceaccount:mlstack:mlstack",
        audience=["api://AzureADTokenExchange"],
    )
    RoleAssignment(
        stack,
        f"{name}-services-blobs",
        scope=account.id,
        role_definition_name="Storage Blob Data Contributor",
        principal_id=identity.principal_id,
        principal_type="ServicePrincipal",
    )
    kube = cluster.kube_config.get(0)
    return ClusterParts(
        kubernetes={
            "host": kube.host,
            "client_certificate": Fn.base64decode(kube.client_certificate),
            "client_key": Fn.base64decode(kube.client_key),
            "cluster_ca_certificate": Fn.base64decode(kube.cluster_ca_certificate),
        },
        kubeconfig=cluster.kube_config_raw,
        artifact_root=f"wasbs://mlflow@{account.name}.blob.core.windows.net/mlflow",
        database_host=database.fqdn,
        database_password=password.result,
        identity_annotations={"azure.workload.identity/client-id": identity.client_id},
        depends_on=pools,
    )
