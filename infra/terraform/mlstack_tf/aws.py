"""AWS, as the Pulumi program's aws.py: a private EKS cluster (egress through a NAT gateway
unless `egress: none`) with managed node groups (the
NVIDIA AMI on GPU pools; IMDSv2 at hop limit 1 and an encrypted root volume, by launch
template), an encrypted private S3 bucket, an encrypted private RDS
PostgreSQL, and IRSA for the services and the cluster-autoscaler (no access keys). Only the
AWS binding's per-service submodules are imported (the whole binding takes minutes)."""

from __future__ import annotations

import json

from cdktn import Fn, TerraformStack, Token
from cdktn_provider_aws.db_instance import DbInstance
from cdktn_provider_aws.db_subnet_group import DbSubnetGroup
from cdktn_provider_aws.eip import Eip
from cdktn_provider_aws.eks_addon import EksAddon
from cdktn_provider_aws.eks_cluster import EksCluster
from cdktn_provider_aws.eks_node_group import EksNodeGroup
from cdktn_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktn_provider_aws.internet_gateway import InternetGateway
from cdktn_provider_aws.kms_key import KmsKey
from cdktn_provider_aws.launch_template import LaunchTemplate
from cdktn_provider_aws.nat_gateway import NatGateway
from cdktn_provider_aws.provider import AwsProvider
from cdktn_provider_aws.route import Route
from cdktn_provider_aws.route_table import RouteTable
from cdktn_provider_aws.route_table_association import RouteTableAssociation
from cdktn_provider_aws.s3_bucket import S3Bucket
from cdktn_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktn_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
)
from cdktn_provider_aws.s3_bucket_versioning import S3BucketVersioningA
from cdktn_provider_aws.security_group import SecurityGroup
from cdktn_provider_aws.subnet import Subnet
from cdktn_provider_aws.vpc import Vpc
from cdktn_provider_random.password import Password
from mlstack_infra import autoscaler
from mlstack_infra.cloud import AWS_CIDR as CIDR
from mlstack_infra.cloud import (
    AWS_PRIVATE_SUBNETS,
    AWS_PUBLIC_SUBNETS,
    EKS_LOG_TYPES,
    eks_launch_template,
    rds_ingress,
    rds_settings,
)
from mlstack_infra.cloud import TAINT_EFFECTS as EFFECTS
from mlstack_infra.cloud import assume_role as _assume
from mlstack_infra.cloud import web_identity as _web_identity
from mlstack_infra.kubeconfig import exec_kubeconfig
from mlstack_infra.spec import InfraSpec, NodePool

from mlstack_tf import access
from mlstack_tf.cluster import ClusterParts, blocks, exec_auth


def build(stack: TerraformStack, spec: InfraSpec) -> ClusterParts:
    name = spec.name
    AwsProvider(
        stack,
        "aws",
        region=spec.region,
        default_tags=blocks([{"tags": {"mlstack.io/stack": name}}]),
    )
    vpc = Vpc(
        stack,
        f"{name}-vpc",
        cidr_block=CIDR,
        enable_dns_hostnames=True,
        enable_dns_support=True,
    )
    subnets = _subnets(stack, spec, vpc, "private")
    subnet_ids = [s.id for s in subnets]
    if spec.egress == "nat":
        _nat(stack, spec, vpc, subnets)

    cluster_role = IamRole(
        stack, f"{name}-cluster", assume_role_policy=_assume("eks.amazonaws.com")
    )
    IamRolePolicyAttachment(
        stack,
        f"{name}-cluster-policy",
        role=cluster_role.name,
        policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
    )
    node_role = IamRole(stack, f"{name}-nodes", assume_role_policy=_assume("ec2.amazonaws.com"))
    for policy in (
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
    ):
        IamRolePolicyAttachment(
            stack,
            f"{name}-nodes-{policy}",
            role=node_role.name,
            policy_arn=f"arn:aws:iam::aws:policy/{policy}",
        )
    secrets_key = KmsKey(
        stack,
        f"{name}-secrets",
        description="EKS secrets envelope encryption",
        enable_key_rotation=True,
    )
    cluster = EksCluster(
        stack,
        f"{name}-eks",
        name=name,
        role_arn=cluster_role.arn,
        version=spec.kubernetes_version,
        vpc_config={
            "subnet_ids": subnet_ids,
            "endpoint_private_access": True,
            "endpoint_public_access": bool(spec.api_access_cidrs),
            "public_access_cidrs": list(spec.api_access_cidrs) or None,
        },
        encryption_config={
            "provider": {"key_arn": secrets_key.arn},
            "resources": ["secrets"],
        },
        access_config={"authentication_mode": "API"},
        enabled_cluster_log_types=EKS_LOG_TYPES,
    )
    access.eks_access_entries(stack, spec, cluster.name)
    node_groups = [
        EksNodeGroup(
            stack,
            f"{name}-{pool.name}",
            cluster_name=cluster.name,
            node_group_name=pool.name,
            node_role_arn=node_role.arn,
            subnet_ids=subnet_ids,
            instance_types=[pool.machine_type],
            ami_type="AL2023_x86_64_NVIDIA" if pool.has_gpu else "AL2023_x86_64_STANDARD",
            capacity_type="SPOT" if pool.spot else "ON_DEMAND",
            launch_template=_launch_template(stack, name, pool),
            scaling_config={
                "desired_size": pool.min_size,
                "min_size": pool.min_size,
                "max_size": pool.max_size,
            },
            labels=pool.all_labels(),
            taint=blocks(
                [
                    {"key": t["key"], "value": t["value"] or None, "effect": EFFECTS[t["effect"]]}
                    for t in pool.all_taints()
                ]
            ),
            # the cluster-autoscaler moves the desired size; Terraform must not move it back
            lifecycle={"ignore_changes": ["scaling_config[0].desired_size"]},
        )
        for pool in spec.node_pools
    ]
    EksAddon(
        stack,
        f"{name}-metrics-server",
        cluster_name=cluster.name,
        addon_name="metrics-server",
        depends_on=node_groups,
    )  # pod autoscalers (the endpoints' HPAs) read it
    # The VPC CNI enforces the services' NetworkPolicies only when told to (its node agent).
    EksAddon(
        stack,
        f"{name}-vpc-cni",
        cluster_name=cluster.name,
        addon_name="vpc-cni",
        configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
        resolve_conflicts_on_create="OVERWRITE",  # EKS installs it self-managed first
        resolve_conflicts_on_update="OVERWRITE",
    )

    # Object storage: private, encrypted, versioned.
    bucket = S3Bucket(
        stack, f"{name}-artifacts", bucket_prefix=f"{name}-artifacts-", force_destroy=False
    )
    S3BucketPublicAccessBlock(
        stack,
        f"{name}-artifacts-private",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    S3BucketServerSideEncryptionConfigurationA(
        stack,
        f"{name}-artifacts-encrypted",
        bucket=bucket.id,
        rule=blocks(
            [
                {
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"},
                    "bucket_key_enabled": True,
                }
            ]
        ),
    )
    S3BucketVersioningA(
        stack,
        f"{name}-artifacts-versioning",
        bucket=bucket.id,
        versioning_configuration={"status": "Enabled"},
    )

    # PostgreSQL: from the cluster's nodes and pods only (rds_ingress), encrypted, its password
    # generated (a sensitive value). The group keeps its description: changing it replaces
    # the group, which Terraform would try to destroy while the database still uses it.
    database_sg = SecurityGroup(
        stack,
        f"{name}-database",
        name_prefix=f"{name}-database-",
        vpc_id=vpc.id,
        description="PostgreSQL from inside the VPC only",
        ingress=blocks([rds_ingress(cluster.vpc_config.cluster_security_group_id)]),
    )
    subnet_group = DbSubnetGroup(
        stack, f"{name}-database-subnets", name_prefix=f"{name}-", subnet_ids=subnet_ids
    )
    password = Password(stack, f"{name}-database-password", length=32, special=False)
    database = DbInstance(
        stack,
        f"{name}-database-instance",
        identifier_prefix=f"{name}-",
        password=password.result,
        db_subnet_group_name=subnet_group.name,
        vpc_security_group_ids=[database_sg.id],
        **rds_settings(spec),
        copy_tags_to_snapshot=True,
        auto_minor_version_upgrade=True,
    )

    # IRSA: the services' Kubernetes account assumes a role that may use the bucket.
    issuer = cluster.identity.get(0).oidc.get(0).issuer
    oidc = IamOpenidConnectProvider(
        stack, f"{name}-oidc", url=issuer, client_id_list=["sts.amazonaws.com"]
    )
    issuer_host = Fn.replace(issuer, "https://", "")
    services_role = IamRole(
        stack,
        f"{name}-services",
        assume_role_policy=_web_identity(oidc.arn, issuer_host, "mlstack:mlstack"),
    )
    IamRolePolicy(
        stack,
        f"{name}-services-bucket",
        role=services_role.id,
        policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket.arn]},
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        "Resource": [f"{bucket.arn}/*"],
                    },
                ],
            }
        ),
    )
    autoscaler_role = IamRole(
        stack,
        f"{name}-autoscaler",
        assume_role_policy=_web_identity(
            oidc.arn, issuer_host, f"{autoscaler.NAMESPACE}:{autoscaler.NAME}"
        ),
    )
    IamRolePolicy(
        stack,
        f"{name}-autoscaler-policy",
        role=autoscaler_role.id,
        policy=json.dumps(autoscaler.POLICY),
    )
    token_args = ["eks", "get-token", "--cluster-name", cluster.name, "--region", spec.region]
    ca = cluster.certificate_authority.get(0).data
    kubeconfig = exec_kubeconfig(
        server=cluster.endpoint, ca=ca, cluster=name, command="aws", args=token_args
    )
    return ClusterParts(
        kubernetes={
            "host": cluster.endpoint,
            "cluster_ca_certificate": Fn.base64decode(ca),
            "exec": exec_auth("aws", token_args),
        },
        kubeconfig=kubeconfig,
        artifact_root=f"s3://{bucket.bucket}/mlflow",
        database_host=database.address,
        database_password=password.result,
        identity_annotations={"eks.amazonaws.com/role-arn": services_role.arn},
        in_cluster_manifests=autoscaler.manifests(cluster.name, spec.region, autoscaler_role.arn),
        depends_on=node_groups,
    )


def _launch_template(stack: TerraformStack, name: str, pool: NodePool) -> dict[str, str]:
    """The pool's launch template, as the Pulumi program's (cloud.eks_launch_template: IMDSv2
    at hop limit 1, an encrypted gp3 root volume), its latest version: a change rolls the
    group's nodes."""
    settings = eks_launch_template(pool)
    template = LaunchTemplate(
        stack,
        f"{name}-{pool.name}-launch-template",
        name_prefix=f"{name}-{pool.name}-",
        **{**settings, "block_device_mappings": blocks(settings["block_device_mappings"])},
    )
    return {"id": template.id, "version": Token.as_string(template.latest_version)}


def _nat(stack: TerraformStack, spec: InfraSpec, vpc: Vpc, private: list[Subnet]) -> None:
    """Egress for the private nodes, as the Pulumi program's: public subnets with an internet
    gateway, one NAT gateway, the private subnets routed through it."""
    name = spec.name
    gateway = InternetGateway(stack, f"{name}-igw", vpc_id=vpc.id)
    public = _subnets(stack, spec, vpc, "public")
    address = Eip(stack, f"{name}-nat-address", domain="vpc")
    nat = NatGateway(
        stack,
        f"{name}-nat",
        allocation_id=address.id,
        subnet_id=public[0].id,
        depends_on=[gateway],
    )
    routes = (
        ("public", public, {"gateway_id": gateway.id}),
        ("private", private, {"nat_gateway_id": nat.id}),
    )
    for side, subnets, target in routes:
        table = RouteTable(stack, f"{name}-{side}", vpc_id=vpc.id)
        Route(
            stack,
            f"{name}-{side}-default",
            route_table_id=table.id,
            destination_cidr_block="0.0.0.0/0",
            **target,
        )
        for zone, subnet in zip("abc", subnets, strict=True):
            RouteTableAssociation(
                stack, f"{name}-{side}-routes-{zone}", subnet_id=subnet.id, route_table_id=table.id
            )


def _subnets(stack: TerraformStack, spec: InfraSpec, vpc: Vpc, side: str) -> list[Subnet]:
    """One subnet per zone, as the Pulumi program's (no public IP on launch on either side)."""
    cidrs = AWS_PUBLIC_SUBNETS if side == "public" else AWS_PRIVATE_SUBNETS
    role = "kubernetes.io/role/elb" if side == "public" else "kubernetes.io/role/internal-elb"
    return [
        Subnet(
            stack,
            f"{spec.name}-{side}-{zone}",
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone=f"{spec.region}{zone}",
            map_public_ip_on_launch=False,
            tags={role: "1"},
        )
        for zone, cidr in zip("abc", cidrs, strict=True)
    ]
