"""Azure: a private AKS cluster in its own network with GPU agent pools, workload identity for
the services, a storage account that allows no public blobs and no shared keys, and
PostgreSQL Flexible Server in a subnet delegated to it, its name in a private DNS zone linked
to the network (public network access disabled)."""

from __future__ import annotations

import base64

import pulumi
import pulumi_azure_native as azure
import pulumi_random as random

from mlstack_infra.cloud import (
    AZURE_DATABASE_SUBNET,
    AZURE_NODES_SUBNET,
    AZURE_VNET,
    NETWORK_CONTRIBUTOR,
    POSTGRES_DELEGATION,
    azure_database_zone,
    azure_storage_account,
)
from mlstack_infra.common import DATABASE_USER, DATABASES, ClusterOutputs, child
from mlstack_infra.spec import InfraSpec

#: Storage Blob Data Contributor, a built-in role.
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


class AzureGpuCluster(pulumi.ComponentResource):
    def __init__(
        self, name: str, spec: InfraSpec, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:infra:AzureGpuCluster", name, None, opts)
        group = azure.resources.ResourceGroup(f"{name}-rg", location=spec.region, opts=child(self))
        vnet = azure.network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=group.name,
            location=spec.region,
            address_space=azure.network.AddressSpaceArgs(address_prefixes=[AZURE_VNET]),
            opts=child(self, ignore_changes=["subnets"]),  # the Subnet resources own them
        )
        nodes = azure.network.Subnet(
            f"{name}-nodes",
            resource_group_name=group.name,
            virtual_network_name=vnet.name,
            subnet_name="nodes",
            address_prefix=AZURE_NODES_SUBNET,
            opts=child(self),
        )
        database_subnet = azure.network.Subnet(
            f"{name}-database-subnet",
            resource_group_name=group.name,
            virtual_network_name=vnet.name,
            subnet_name="database",
            address_prefix=AZURE_DATABASE_SUBNET,
            delegations=[
                azure.network.DelegationArgs(name="postgres", service_name=POSTGRES_DELEGATION)
            ],
            opts=child(self, depends_on=[nodes]),  # one subnet change at a time in a network
        )
        zone = azure.privatedns.PrivateZone(
            f"{name}-database-zone",
            resource_group_name=group.name,
            location="Global",
            private_zone_name=azure_database_zone(spec),
            opts=child(self),
        )
        link = azure.privatedns.VirtualNetworkLink(
            f"{name}-database-zone-link",
            resource_group_name=group.name,
            private_zone_name=zone.name,
            location="Global",
            registration_enabled=False,
            virtual_network=azure.privatedns.SubResourceArgs(id=vnet.id),
            opts=child(self),
        )
        system, *others = spec.node_pools
        self.cluster = azure.containerservice.ManagedCluster(
            name,
            resource_group_name=group.name,
            location=spec.region,
            dns_prefix=name,
            kubernetes_version=spec.kubernetes_version,
            identity=azure.containerservice.ManagedClusterIdentityArgs(type="SystemAssigned"),
            agent_pool_profiles=[_profile(system, "System", nodes.id)],
            api_server_access_profile=azure.containerservice.ManagedClusterAPIServerAccessProfileArgs(
                enable_private_cluster=not spec.api_access_cidrs,
                authorized_ip_ranges=list(spec.api_access_cidrs) or None,
            ),
            oidc_issuer_profile=azure.containerservice.ManagedClusterOIDCIssuerProfileArgs(
                enabled=True
            ),
            security_profile=azure.containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=azure.containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                    enabled=True
                )
            ),
            disable_local_accounts=False,
            # Azure's network policy enforces the serving namespace's only-the-gateway
            network_profile=azure.containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure", network_policy="azure"
            ),
            opts=child(self),
        )
        self.agent_pools = [
            azure.containerservice.AgentPool(
                f"{name}-{pool.name}",
                agent_pool_name=pool.name.replace("-", "")[:12],
                resource_group_name=group.name,
                resource_name_=self.cluster.name,
                **_profile(pool, "User", nodes.id, as_kwargs=True),
                opts=child(self),
            )
            for pool in others
        ]
        # AKS's own identity manages load balancers and routes in a network it did not create
        azure.authorization.RoleAssignment(
            f"{name}-cluster-network",
            principal_id=self.cluster.identity.apply(lambda i: i.principal_id if i else ""),
            principal_type="ServicePrincipal",
            role_definition_id=pulumi.Output.concat(
                "/providers/Microsoft.Authorization/roleDefinitions/", NETWORK_CONTRIBUTOR
            ),
            scope=vnet.id,
            opts=child(self),
        )

        self.account = azure.storage.StorageAccount(
            f"{name}-artifacts",
            account_name=azure_storage_account(spec),
            resource_group_name=group.name,
            location=spec.region,
            kind="StorageV2",
            sku=azure.storage.SkuArgs(name="Standard_ZRS"),
            allow_blob_public_access=False,
            # the services reach the blobs as their managed identity: no account key works
            allow_shared_key_access=False,
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            encryption=azure.storage.EncryptionArgs(
                key_source="Microsoft.Storage",
                services=azure.storage.EncryptionServicesArgs(
                    blob=azure.storage.EncryptionServiceArgs(enabled=True, key_type="Account")
                ),
            ),
            opts=child(self),
        )
        self.container = azure.storage.BlobContainer(
            f"{name}-artifacts",
            account_name=self.account.name,
            resource_group_name=group.name,
            container_name="mlflow",
            public_access="None",
            opts=child(self),
        )

        self.password = random.RandomPassword(
            f"{name}-database", length=32, special=False, opts=child(self)
        )
        self.database = azure.dbforpostgresql.Server(
            f"{name}-database",
            resource_group_name=group.name,
            location=spec.region,
            version="16",
            administrator_login=DATABASE_USER,
            administrator_login_password=self.password.result,
            sku=azure.dbforpostgresql.SkuArgs(
                name=spec.database.size or "Standard_B2s", tier="Burstable"
            ),
            storage=azure.dbforpostgresql.StorageArgs(
                storage_size_gb=max(32, spec.database.storage_gb)
            ),
            network=azure.dbforpostgresql.NetworkArgs(
                delegated_subnet_resource_id=database_subnet.id,
                private_dns_zone_arm_resource_id=zone.id,
                public_network_access="Disabled",
            ),
            # the zone must resolve in the network before the server registers in it
            opts=child(self, depends_on=[link]),
        )
        for database in DATABASES:
            azure.dbforpostgresql.Database(
                f"{name}-{database}",
                resource_group_name=group.name,
                server_name=self.database.name,
                database_name=database,
                charset="UTF8",
                collation="en_US.utf8",
                opts=child(self),
            )

        # Workload identity: the services' Kubernetes account federates to this identity.
        self.identity = azure.managedidentity.UserAssignedIdentity(
            f"{name}-services",
            resource_group_name=group.name,
            location=spec.region,
            opts=child(self),
        )
        azure.managedidentity.FederatedIdentityCredential(
            f"{name}-services-federation",
            resource_group_name=group.name,
            resource_name_=self.identity.name,
            issuer=self.cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else ""),
            subject="system:serviceaccount:mlstack:mlstack",
            audiences=["api://AzureADTokenExchange"],
            opts=child(self),
        )
        azure.authorization.RoleAssignment(
            f"{name}-services-blobs",
            principal_id=self.identity.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=pulumi.Output.concat(
                "/providers/Microsoft.Authorization/roleDefinitions/", BLOB_CONTRIBUTOR
            ),
            scope=self.account.id,
            opts=child(self),
        )
        credentials = azure.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name, resource_name=self.cluster.name
        )
        self.kubeconfig = credentials.kubeconfigs.apply(
            lambda configs: base64.b64decode(configs[0].value).decode() if configs else ""
        )
        self.register_outputs({"cluster": self.cluster.name, "account": self.account.name})

    def outputs(self) -> ClusterOutputs:
        return ClusterOutputs(
            kubeconfig=pulumi.Output.secret(self.kubeconfig),
            artifact_root=self.account.name.apply(
                lambda a: f"wasbs://mlflow@{a}.blob.core.windows.net/mlflow"
            ),
            database_host=self.database.fully_qualified_domain_name,
            database_user=DATABASE_USER,
            database_password=self.password.result,
            identity_annotations=self.identity.client_id.apply(
                lambda c: {"azure.workload.identity/client-id": c}
            ),
        )


def _profile(
    pool: object, mode: str, subnet: pulumi.Input[str], *, as_kwargs: bool = False
) -> object:
    from mlstack_infra.spec import NodePool

    assert isinstance(pool, NodePool)
    values = {
        "count": pool.min_size,  # a user pool may start at zero (min_size 0)
        "min_count": pool.min_size,
        "max_count": pool.max_size,
        "enable_auto_scaling": True,
        "vm_size": pool.machine_type,
        "os_type": "Linux",
        "mode": mode,
        "node_labels": pool.all_labels(),
        "node_taints": [f"{t['key']}={t['value']}:{t['effect']}" for t in pool.taints_on("azure")]
        or None,
        "scale_set_priority": "Spot" if pool.spot else None,
        "enable_node_public_ip": False,
        "vnet_subnet_id": subnet,
    }
    if as_kwargs:
        return values
    return azure.containerservice.ManagedClusterAgentPoolProfileArgs(
        name=pool.name.replace("-", "")[:12], **values
    )
