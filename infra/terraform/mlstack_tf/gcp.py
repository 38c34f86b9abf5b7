"""GCP, as the Pulumi program's gcp.py: a private GKE cluster with GPU node pools (Google
installs the driver; Shielded VM nodes that GKE repairs and upgrades), flow logs on the
nodes' subnetwork, a firewall rule that lets its control plane reach Envoy Gateway's
webhook on them, Workload Identity for the services, a private GCS bucket, and Cloud SQL
PostgreSQL on a private IP."""

from __future__ import annotations

from cdktn import Fn, TerraformStack
from cdktn_provider_google.compute_firewall import ComputeFirewall
from cdktn_provider_google.compute_global_address import ComputeGlobalAddress
from cdktn_provider_google.compute_network import ComputeNetwork
from cdktn_provider_google.compute_router import ComputeRouter
from cdktn_provider_google.compute_router_nat import ComputeRouterNat
from cdktn_provider_google.compute_subnetwork import ComputeSubnetwork
from cdktn_provider_google.container_cluster import ContainerCluster
from cdktn_provider_google.container_node_pool import ContainerNodePool
from cdktn_provider_google.provider import GoogleProvider
from cdktn_provider_google.service_account import ServiceAccount
from cdktn_provider_google.service_account_iam_member import ServiceAccountIamMember
from cdktn_provider_google.service_networking_connection import ServiceNetworkingConnection
from cdktn_provider_google.sql_database import SqlDatabase
from cdktn_provider_google.sql_database_instance import SqlDatabaseInstance
from cdktn_provider_google.sql_user import SqlUser
from cdktn_provider_google.storage_bucket import StorageBucket
from cdktn_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from cdktn_provider_random.password import Password
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
from mlstack_infra.kubeconfig import exec_kubeconfig
from mlstack_infra.manifests import DATABASE_USER, DATABASES
from mlstack_infra.spec import InfraSpec

from mlstack_tf import access
from mlstack_tf.cluster import ClusterParts, blocks, exec_auth


def build(stack: TerraformStack, spec: InfraSpec) -> ClusterParts:
    name = spec.name
    project = spec.project
    assert project is not None  # the spec requires it for gcp
    GoogleProvider(stack, "google", project=project, region=spec.region)
    network = ComputeNetwork(
        stack, f"{name}-network", name=f"{name}-network", auto_create_subnetworks=False
    )
    subnet = ComputeSubnetwork(
        stack,
        f"{name}-nodes",
        name=f"{name}-nodes",
        network=network.id,
        region=spec.region,
        ip_cidr_range="10.50.0.0/20",
        private_ip_google_access=True,
        secondary_ip_range=blocks(
            [
                {"range_name": "pods", "ip_cidr_range": "10.60.0.0/14"},
                {"range_name": "services", "ip_cidr_range": "10.70.0.0/20"},
            ]
        ),
        log_config=GCP_FLOW_LOGS,
    )
    if spec.egress == "nat":  # the nodes have no public IP: images come through Cloud NAT
        router = ComputeRouter(
            stack, f"{name}-router", name=f"{name}-router", network=network.id, region=spec.region
        )
        ComputeRouterNat(
            stack,
            f"{name}-nat",
            name=f"{name}-nat",
            router=router.name,
            region=spec.region,
            **GCP_NAT,
        )
    authorized = (
        {"cidr_blocks": blocks([{"cidr_block": c} for c in spec.api_access_cidrs])}
        if spec.api_access_cidrs
        else None
    )
    cluster = ContainerCluster(
        stack,
        f"{name}-gke",
        name=name,
        location=spec.region,
        network=network.id,
        subnetwork=subnet.id,
        remove_default_node_pool=True,
        initial_node_count=1,
        min_master_version=spec.kubernetes_version,
        release_channel={"channel": "REGULAR"},
        workload_identity_config={"workload_pool": f"{project}.svc.id.goog"},
        private_cluster_config={
            "enable_private_nodes": True,
            "enable_private_endpoint": not spec.api_access_cidrs,
            "master_ipv4_cidr_block": GKE_MASTER_CIDR,
        },
        master_authorized_networks_config=authorized,
        # Dataplane V2 enforces NetworkPolicy (the serving namespace's only-the-gateway)
        datapath_provider="ADVANCED_DATAPATH",
        master_auth={"client_certificate_config": {"issue_client_certificate": False}},
        ip_allocation_policy={
            "cluster_secondary_range_name": "pods",
            "services_secondary_range_name": "services",
        },
        deletion_protection=True,
    )
    nodes_account = ServiceAccount(stack, f"{name}-nodes-account", account_id=f"{name}-nodes"[:30])
    if spec.services.serving:  # the control plane to Envoy Gateway's webhook on the nodes
        ComputeFirewall(
            stack,
            f"{name}-master-webhooks",
            name=f"{name}-master-webhooks",
            network=network.id,
            allow=blocks([GKE_WEBHOOK_ALLOW]),
            **gke_webhook_firewall(nodes_account.email),
        )
    node_pools = [
        ContainerNodePool(
            stack,
            f"{name}-{pool.name}",
            name=pool.name,
            cluster=cluster.name,
            location=spec.region,
            initial_node_count=pool.min_size,
            autoscaling={"min_node_count": pool.min_size, "max_node_count": pool.max_size},
            management=GKE_NODE_MANAGEMENT,
            node_config={
                "machine_type": pool.machine_type,
                "spot": pool.spot,
                "labels": pool.all_labels(),
                "taint": blocks(
                    [
                        {"key": t["key"], "value": t["value"], "effect": EFFECTS[t["effect"]]}
                        for t in pool.all_taints()
                    ]
                ),
                "guest_accelerator": blocks(
                    [
                        {
                            "type": str(pool.gpu_type),
                            "count": pool.gpu_count,
                            "gpu_driver_installation_config": {"gpu_driver_version": "LATEST"},
                        }
                    ]
                )
                if pool.has_gpu
                else None,
                "service_account": nodes_account.email,
                "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                "workload_metadata_config": {"mode": "GKE_METADATA"},
                "shielded_instance_config": GKE_SHIELDED_NODES,
            },
        )
        for pool in spec.node_pools
    ]

    bucket = StorageBucket(
        stack,
        f"{name}-artifacts",
        name=f"{project}-{name}-artifacts",
        location=spec.region,
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning={"enabled": True},
        force_destroy=False,
    )

    # Cloud SQL on a private IP in the cluster's network (no public address).
    peering_range = ComputeGlobalAddress(
        stack,
        f"{name}-sql-range",
        name=f"{name}-sql-range",
        purpose="VPC_PEERING",
        address_type="INTERNAL",
        prefix_length=16,
        network=network.id,
    )
    peering = ServiceNetworkingConnection(
        stack,
        f"{name}-sql-peering",
        network=network.id,
        service="servicenetworking.googleapis.com",
        reserved_peering_ranges=[peering_range.name],
    )
    database = SqlDatabaseInstance(
        stack,
        f"{name}-database",
        database_version="POSTGRES_16",
        region=spec.region,
        deletion_protection=True,
        settings={
            "tier": spec.database.size or "db-custom-2-7680",
            "disk_size": spec.database.storage_gb,
            "ip_configuration": {
                "ipv4_enabled": False,
                "private_network": network.id,
                "ssl_mode": "ENCRYPTED_ONLY",
            },
            "backup_configuration": {"enabled": True},
        },
        depends_on=[peering],
    )
    password = Password(stack, f"{name}-database-password", length=32, special=False)
    SqlUser(
        stack,
        f"{name}-database-user",
        instance=database.name,
        name=DATABASE_USER,
        password=password.result,
    )
    for db in DATABASES:
        SqlDatabase(stack, f"{name}-{db}", instance=database.name, name=db)

    # Workload Identity: the services' Kubernetes account acts as this Google account.
    services_account = ServiceAccount(stack, f"{name}-services", account_id=f"{name}-services"[:30])
    ServiceAccountIamMember(
        stack,
        f"{name}-services-workload-identity",
        service_account_id=services_account.name,
        role="roles/iam.workloadIdentityUser",
        member=f"serviceAccount:{project}.svc.id.goog[mlstack/mlstack]",
    )
    StorageBucketIamMember(
        stack,
        f"{name}-services-bucket",
        bucket=bucket.name,
        role="roles/storage.objectAdmin",
        member=f"serviceAccount:{services_account.email}",
    )
    ca = cluster.master_auth.cluster_ca_certificate
    server = f"https://{cluster.endpoint}"
    access.gke_cluster_viewers(stack, spec)
    return ClusterParts(
        kubernetes={
            "host": server,
            "cluster_ca_certificate": Fn.base64decode(ca),
            "exec": exec_auth("gke-gcloud-auth-plugin", []),
        },
        kubeconfig=exec_kubeconfig(
            server=server, ca=ca, cluster=name, command="gke-gcloud-auth-plugin"
        ),
        artifact_root=f"gs://{bucket.name}/mlflow",
        database_host=database.private_ip_address,
        database_password=password.result,
        identity_annotations={"iam.gke.io/gcp-service-account": services_account.email},
        device_plugin=False,  # GKE runs its own with the driver it installs
        depends_on=node_pools,
    )
