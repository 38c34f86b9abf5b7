"""Facts about the clouds both renderers (this Pulumi program and the CDK Terrain app in
infra/terraform) need alike: how EKS and GKE spell taint effects, the AWS network, the IAM
trust policies, the EKS nodes' launch template, GKE's node pool hardening and the nodes'
flow logs, and the GKE firewall rule for Envoy Gateway's webhook. No Pulumi here."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from mlstack_infra.gateway import WEBHOOK_PORT
from mlstack_infra.manifests import DATABASE_USER
from mlstack_infra.spec import InfraSpec, NodePool

#: EKS and GKE spell Kubernetes taint effects in upper snake case.
TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
AWS_CIDR = "10.40.0.0/16"
#: Per zone (a, b, c): the nodes' private subnets, and the public ones that hold only the NAT
#: gateway and, with `serving_public`, the gateway's load balancer (no public IP on launch).
AWS_PRIVATE_SUBNETS = ("10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20")
AWS_PUBLIC_SUBNETS = ("10.40.64.0/22", "10.40.68.0/22", "10.40.72.0/22")
#: The GKE control plane's range (a private cluster's `master_ipv4_cidr_block`): where it
#: calls the cluster's webhooks from.
GKE_MASTER_CIDR = "172.16.0.0/28"
#: What gke_webhook_firewall's rule admits (pulumi_gcp's `allows`, the Terraform binding's
#: `allow`): Envoy Gateway's admission webhook, nothing else.
GKE_WEBHOOK_ALLOW: dict[str, Any] = {"protocol": "tcp", "ports": [str(WEBHOOK_PORT)]}
#: GKE node pools run as Shielded VMs: secure boot (only signed boot components and kernel
#: modules load; GKE's installed GPU driver is signed) and integrity monitoring (each boot
#: measured against a baseline). Secure boot is off unless asked for.
GKE_SHIELDED_NODES = {"enable_secure_boot": True, "enable_integrity_monitoring": True}
#: GKE repairs unhealthy nodes and upgrades them with the control plane (security patches).
GKE_NODE_MANAGEMENT = {"auto_repair": True, "auto_upgrade": True}
#: VPC flow logs on the nodes' subnetwork (off unless configured), half the flows sampled,
#: aggregated over 10 minutes to keep the volume down.
GCP_FLOW_LOGS: dict[str, Any] = {"aggregation_interval": "INTERVAL_10_MIN", "flow_sampling": 0.5}
#: GCP's Cloud NAT for every range of the nodes' subnetwork, addresses allocated by Google.
GCP_NAT = {
    "nat_ip_allocate_option": "AUTO_ONLY",
    "source_subnetwork_ip_ranges_to_nat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
}
#: The AKS cluster's own network: a subnet for the nodes (Azure CNI gives pods addresses in
#: it too) and one delegated to PostgreSQL Flexible Server, which lives only in a delegated
#: subnet when public access is off. Clear of AKS's default service range (10.0.0.0/16).
AZURE_VNET = "10.42.0.0/16"
AZURE_NODES_SUBNET = "10.42.0.0/18"
AZURE_DATABASE_SUBNET = "10.42.64.0/24"
POSTGRES_DELEGATION = "Microsoft.DBforPostgreSQL/flexibleServers"
#: Network Contributor: AKS's own identity manages load balancers in a network it did not make.
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"


def azure_database_zone(spec: InfraSpec) -> str:
    """The private DNS zone the flexible server registers its name in, linked to the
    cluster's network (`<name>.private.postgres.database.azure.com`)."""
    return f"{spec.name}.private.postgres.database.azure.com"


def azure_storage_account(spec: InfraSpec) -> str:
    """The storage account's name (global across Azure, 3-24 lowercase letters and digits):
    the spec's `storage_account`, else the stack's name (its letters and digits, 16 at most)
    and 8 hex digits of a hash of its name and region: the same on every synth and apply,
    different for another stack."""
    if spec.storage_account:
        return spec.storage_account
    stem = re.sub(r"[^a-z0-9]", "", spec.name)[:16]
    digest = hashlib.sha256(f"{spec.name}/{spec.region}".encode()).hexdigest()[:8]
    return f"{stem}{digest}"


#: The EKS control plane logs both paths turn on (CloudWatch).
EKS_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]


#: The EKS nodes' root volume: the size EKS gives a managed node group without a launch
#: template (the spec names none), gp3, encrypted (not left to the account's default).
EKS_NODE_VOLUME_GB = 20
#: The tag that names the pool a launch template is for (the posture pairs them by it).
EKS_POOL_TAG = "mlstack.io/pool"


def eks_launch_template(pool: NodePool) -> dict[str, Any]:
    """The launch template of the node group for `pool` (pulumi_aws and the
    Terraform binding take the same arguments; pulumi_aws wants its blocks as Args, the
    binding its repeated blocks camelCased). IMDSv2 only, and a hop limit of 1: the instance
    metadata's answer dies at the node, so a pod (one hop further, behind its veth) cannot
    take the node role's credentials. Nothing the stack installs needs them from a pod:
    the services and the cluster-autoscaler act through IRSA (the autoscaler is told its
    region), and the VPC CNI and kube-proxy run on the host's network. The root volume
    (`/dev/xvda` on the AL2023 AMIs) is gp3 and encrypted."""
    return {
        "metadata_options": {
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": 1,
        },
        "block_device_mappings": [
            {
                "device_name": "/dev/xvda",
                "ebs": {
                    "volume_size": EKS_NODE_VOLUME_GB,
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }
        ],
        "tags": {EKS_POOL_TAG: pool.name},
    }


def assume_role(service: str) -> str:
    """A trust policy that lets an AWS service (`eks.amazonaws.com`) assume the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def web_identity(provider_arn: str, issuer: str, account: str = "mlstack:mlstack") -> str:
    """IRSA: only one Kubernetes account (`namespace:name`) of the cluster whose OIDC issuer
    is `issuer` (with or without `https://`) may assume the role."""
    subject = f"{issuer.removeprefix('https://')}:sub"
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {subject: f"system:serviceaccount:{account}"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def rds_settings(spec: InfraSpec) -> dict[str, Any]:
    """The RDS PostgreSQL instance's settings (pulumi_aws and the Terraform binding take the
    same arguments): not public, encrypted, IAM auth, deletion protection, a final snapshot."""
    return {
        "engine": "postgres",
        "engine_version": "16",
        "instance_class": spec.database.size or "db.t4g.medium",
        "allocated_storage": spec.database.storage_gb,
        "db_name": "mlflow",
        "username": DATABASE_USER,
        "publicly_accessible": False,
        "storage_encrypted": True,
        "iam_database_authentication_enabled": True,
        "deletion_protection": True,
        "skip_final_snapshot": False,
        "final_snapshot_identifier": f"{spec.name}-database-final",
        "enabled_cloudwatch_logs_exports": ["postgresql", "upgrade"],
    }


def rds_ingress(cluster_security_group: Any) -> dict[str, Any]:
    """The RDS security group's one ingress rule (pulumi_aws and the Terraform binding take
    the same arguments): PostgreSQL from the EKS cluster security group only, the group EKS
    attaches to managed node groups' nodes and so to the pods on them (the VPC CNI gives pods
    the nodes' interfaces). Nothing else in the VPC reaches the database."""
    return {
        "description": "PostgreSQL from the EKS cluster security group (the nodes and pods)",
        "protocol": "tcp",
        "from_port": 5432,
        "to_port": 5432,
        "security_groups": [cluster_security_group],
    }


def gke_webhook_firewall(nodes_account: Any) -> dict[str, Any]:
    """A VPC firewall rule's settings (pulumi_gcp and the Terraform binding take the same
    arguments; GKE_WEBHOOK_ALLOW is what it admits): the GKE control plane to the nodes
    running as `nodes_account` (the node pools' service account). GKE's own rule for a
    private cluster admits its master range to the nodes on tcp 443 and 10250 only, and the
    API server dials a webhook at its pod's address and port (kubernetes/kubernetes#79739),
    so without this rule Envoy Gateway's webhook is dropped at the VPC, before any
    NetworkPolicy sees it (GKE's private clusters how-to: "Add firewall rules for specific
    use cases")."""
    return {
        "description": "The GKE control plane to Envoy Gateway's admission webhook",
        "direction": "INGRESS",
        "source_ranges": [GKE_MASTER_CIDR],
        "target_service_accounts": [nodes_account],
    }
