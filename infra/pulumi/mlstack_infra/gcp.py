"""GCP: a private GKE cluster with GPU node pools (Google installs the driver; Shielded VM
nodes that GKE repairs and upgrades), flow logs on the nodes' subnetwork, a firewall
rule that lets its control plane reach Envoy Gateway's webhook on them, Workload Identity for
the services, a private GCS bucket, and Cloud SQL PostgreSQL on a private IP."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from mlstack_infra.cloud import (
    GCP_FLOW_LOGS,
    GCP_NAT,
    GKE_MASTER_CIDR,
    GKE_NODE_MANAGEMENT,
    GKE_SHIELDED_NODES,
    GKE_WEBHOOK_ALLOW,
    gke_webhook_firewall,
)
from mlstack_infra.cloud import TAINT_EFFECTS as EFFECTS
from mlstack_infra.common import DATABASE_USER, DATABASES, ClusterOutputs, child, exec_kubeconfig
from mlstack_infra.spec import InfraSpec


class GcpGpuCluster(pulumi.ComponentResource):
    def __init__(
        self, name: str, spec: InfraSpec, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:infra:GcpGpuCluster", name, None, opts)
        project = spec.project
        assert project is not None
        network = gcp.compute.Network(
            f"{name}-network", auto_create_subnetworks=False, project=project, opts=child(self)
        )
        subnet = gcp.compute.Subnetwork(
            f"{name}-nodes",
            network=network.id,
            region=spec.region,
            ip_cidr_range="10.50.0.0/20",
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name="pods", ip_cidr_range="10.60.0.0/14"
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name="services", ip_cidr_range="10.70.0.0/20"
                ),
            ],
            log_config=gcp.compute.SubnetworkLogConfigArgs(**GCP_FLOW_LOGS),
            project=project,
            opts=child(self),
        )
        if spec.egress == "nat":  # the nodes have no public IP: images come through Cloud NAT
            router = gcp.compute.Router(
                f"{name}-router",
                network=network.id,
                region=spec.region,
                project=project,
                opts=child(self),
            )
            gcp.compute.RouterNat(
                f"{name}-nat",
                router=router.name,
                region=spec.region,
                project=project,
                **GCP_NAT,
                opts=child(self),
            )
        authorized = (
            gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[
                    gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(cidr_block=c)
                    for c in spec.api_access_cidrs
                ]
            )
            if spec.api_access_cidrs
            else None
        )
        self.cluster = gcp.container.Cluster(
            name,
            location=spec.region,
            project=project,
            network=network.id,
            subnetwork=subnet.id,
            remove_default_node_pool=True,
            initial_node_count=1,
            min_master_version=spec.kubernetes_version,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="REGULAR"),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{project}.svc.id.goog"
            ),
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=not spec.api_access_cidrs,
                master_ipv4_cidr_block=GKE_MASTER_CIDR,
            ),
            master_authorized_networks_config=authorized,
            # Dataplane V2 enforces NetworkPolicy (the serving namespace's only-the-gateway)
            datapath_provider="ADVANCED_DATAPATH",
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False
                )
            ),
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name="pods", services_secondary_range_name="services"
            ),
            deletion_protection=True,
            opts=child(self),
        )
        nodes_account = gcp.serviceaccount.Account(
            f"{name}-nodes", account_id=f"{name}-nodes"[:30], project=project, opts=child(self)
        )
        if spec.services.serving:  # the control plane to Envoy Gateway's webhook on the nodes
            gcp.compute.Firewall(
                f"{name}-master-webhooks",
                network=network.id,
                project=project,
                allows=[gcp.compute.FirewallAllowArgs(**GKE_WEBHOOK_ALLOW)],
                **gke_webhook_firewall(nodes_account.email),
                opts=child(self),
            )
        self.node_pools = [
            gcp.container.NodePool(
                f"{name}-{pool.name}",
                cluster=self.cluster.name,
                location=spec.region,
                project=project,
                initial_node_count=pool.min_size,
                autoscaling=gcp.container.NodePoolAutoscalingArgs(
                    min_node_count=pool.min_size, max_node_count=pool.max_size
                ),
                management=gcp.container.NodePoolManagementArgs(**GKE_NODE_MANAGEMENT),
                node_config=gcp.container.NodePoolNodeConfigArgs(
                    machine_type=pool.machine_type,
                    spot=pool.spot,
                    labels=pool.all_labels(),
                    taints=[
                        gcp.container.NodePoolNodeConfigTaintArgs(
                            key=t["key"], value=t["value"], effect=EFFECTS[t["effect"]]
                        )
                        for t in pool.all_taints()
                    ],
                    guest_accelerators=[
                        gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                            type=str(pool.gpu_type),
                            count=pool.gpu_count,
                            gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                                gpu_driver_version="LATEST"
                            ),
                        )
                    ]
                    if pool.has_gpu
                    else None,
                    service_account=nodes_account.email,
                    oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                    workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                        mode="GKE_METADATA"
                    ),
                    shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                        **GKE_SHIELDED_NODES
                    ),
                ),
                opts=child(self),
            )
            for pool in spec.node_pools
        ]

        self.bucket = gcp.storage.Bucket(
            f"{name}-artifacts",
            location=spec.region,
            project=project,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            force_destroy=False,
            opts=child(self),
        )

        # Cloud SQL on a private IP in the cluster's network (no public address).
        peering_range = gcp.compute.GlobalAddress(
            f"{name}-sql-range",
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            prefix_length=16,
            network=network.id,
            project=project,
            opts=child(self),
        )
        peering = gcp.servicenetworking.Connection(
            f"{name}-sql-peering",
            network=network.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[peering_range.name],
            opts=child(self),
        )
        self.database = gcp.sql.DatabaseInstance(
            f"{name}-database",
            database_version="POSTGRES_16",
            region=spec.region,
            project=project,
            deletion_protection=True,
            settings=gcp.sql.DatabaseInstanceSettingsArgs(
                tier=spec.database.size or "db-custom-2-7680",
                disk_size=spec.database.storage_gb,
                ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                    ipv4_enabled=False, private_network=network.id, ssl_mode="ENCRYPTED_ONLY"
                ),
                backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                    enabled=True
                ),
            ),
            opts=child(self, depends_on=[peering]),
        )
        self.password = random.RandomPassword(
            f"{name}-database", length=32, special=False, opts=child(self)
        )
        gcp.sql.User(
            f"{name}-database-user",
            instance=self.database.name,
            name=DATABASE_USER,
            password=self.password.result,
            project=project,
            opts=child(self),
        )
        for database in DATABASES:
            gcp.sql.Database(
                f"{name}-{database}",
                instance=self.database.name,
                name=database,
                project=project,
                opts=child(self),
            )

        # Workload Identity: the services' Kubernetes account acts as this Google account.
        self.services_account = gcp.serviceaccount.Account(
            f"{name}-services",
            account_id=f"{name}-services"[:30],
            project=project,
            opts=child(self),
        )
        gcp.serviceaccount.IAMMember(
            f"{name}-services-workload-identity",
            service_account_id=self.services_account.name,
            role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{project}.svc.id.goog[mlstack/mlstack]",
            opts=child(self),
        )
        gcp.storage.BucketIAMMember(
            f"{name}-services-bucket",
            bucket=self.bucket.name,
            role="roles/storage.objectAdmin",
            member=self.services_account.email.apply(lambda e: f"serviceAccount:{e}"),
            opts=child(self),
        )
        self.kubeconfig = pulumi.Output.all(
            self.cluster.endpoint, self.cluster.master_auth, self.cluster.name
        ).apply(
            lambda v: exec_kubeconfig(
                server=f"https://{v[0]}",
                ca=v[1]["cluster_ca_certificate"],
                cluster=v[2],
                command="gke-gcloud-auth-plugin",
            )
        )
        self.register_outputs({"cluster": self.cluster.name, "bucket": self.bucket.name})

    def outputs(self) -> ClusterOutputs:
        return ClusterOutputs(
            kubeconfig=pulumi.Output.secret(self.kubeconfig),
            artifact_root=self.bucket.name.apply(lambda b: f"gs://{b}/mlflow"),
            database_host=self.database.private_ip_address,
            database_user=DATABASE_USER,
            database_password=self.password.result,
            identity_annotations=self.services_account.email.apply(
                lambda e: {"iam.gke.io/gcp-service-account": e}
            ),
            device_plugin=False,  # GKE runs its own with the driver it installs
        )
