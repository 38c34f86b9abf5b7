"""AWS: a private EKS cluster (private nodes, egress through a NAT gateway unless `egress:
none`) with managed node groups (the NVIDIA AMI on GPU pools; IMDSv2 at hop limit 1 and an
encrypted root volume, by launch template), an
encrypted private S3 bucket, an encrypted private RDS PostgreSQL, and IRSA for the services
(no access keys anywhere)."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_random as random

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
from mlstack_infra.common import DATABASE_USER, ClusterOutputs, child, exec_kubeconfig
from mlstack_infra.spec import InfraSpec, NodePool


class AwsGpuCluster(pulumi.ComponentResource):
    def __init__(
        self, name: str, spec: InfraSpec, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:infra:AwsGpuCluster", name, None, opts)
        self.region = spec.region
        tags = {"mlstack.io/stack": name}
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=CIDR,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags,
            opts=child(self),
        )
        subnets = self._subnets(name, spec, vpc, "private", tags)
        subnet_ids = [s.id for s in subnets]
        if spec.egress == "nat":
            self._nat(name, spec, vpc, subnets, tags)

        cluster_role = aws.iam.Role(
            f"{name}-cluster", assume_role_policy=_assume("eks.amazonaws.com"), opts=child(self)
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child(self),
        )
        node_role = aws.iam.Role(
            f"{name}-nodes", assume_role_policy=_assume("ec2.amazonaws.com"), opts=child(self)
        )
        for policy in (
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly",
        ):
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{policy}",
                role=node_role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=child(self),
            )
        secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description="EKS secrets envelope encryption",
            enable_key_rotation=True,
            opts=child(self),
        )
        self.cluster = aws.eks.Cluster(
            name,
            role_arn=cluster_role.arn,
            version=spec.kubernetes_version,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(spec.api_access_cidrs),
                public_access_cidrs=list(spec.api_access_cidrs) or None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
                resources=["secrets"],
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode="API"),
            enabled_cluster_log_types=EKS_LOG_TYPES,
            tags=tags,
            opts=child(self),
        )
        self.node_groups = [
            aws.eks.NodeGroup(
                f"{name}-{pool.name}",
                cluster_name=self.cluster.name,
                node_role_arn=node_role.arn,
                subnet_ids=subnet_ids,
                instance_types=[pool.machine_type],
                ami_type="AL2023_x86_64_NVIDIA" if pool.has_gpu else "AL2023_x86_64_STANDARD",
                capacity_type="SPOT" if pool.spot else "ON_DEMAND",
                launch_template=self._launch_template(name, pool, tags),
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                    desired_size=pool.min_size,
                    min_size=pool.min_size,
                    max_size=pool.max_size,
                ),
                labels=pool.all_labels(),
                taints=[
                    aws.eks.NodeGroupTaintArgs(
                        key=t["key"], value=t["value"] or None, effect=EFFECTS[t["effect"]]
                    )
                    for t in pool.all_taints()
                ],
                tags=tags,
                # the cluster-autoscaler moves the desired size; Pulumi must not move it back
                opts=child(self, ignore_changes=["scalingConfig.desiredSize"]),
            )
            for pool in spec.node_pools
        ]
        aws.eks.Addon(
            f"{name}-metrics-server",
            cluster_name=self.cluster.name,
            addon_name="metrics-server",
            opts=child(self, depends_on=self.node_groups),
        )  # pod autoscalers (the endpoints' HPAs) read it
        # The VPC CNI enforces the services' NetworkPolicies only when told to (its node agent).
        aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=self.cluster.name,
            addon_name="vpc-cni",
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE",  # EKS installs it self-managed first
            resolve_conflicts_on_update="OVERWRITE",
            opts=child(self),
        )

        # Object storage: private, encrypted, versioned.
        self.bucket = aws.s3.Bucket(
            f"{name}-artifacts", force_destroy=False, tags=tags, opts=child(self)
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-artifacts-private",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child(self),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-artifacts-encrypted",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms"
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=child(self),
        )
        aws.s3.BucketVersioning(
            f"{name}-artifacts-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child(self),
        )

        # PostgreSQL: from the cluster's nodes and pods only (rds_ingress), encrypted, its
        # password a secret. The group keeps its description: changing it replaces the group.
        cluster_sg = self.cluster.vpc_config.apply(lambda c: c.cluster_security_group_id)
        database_sg = aws.ec2.SecurityGroup(
            f"{name}-database",
            vpc_id=vpc.id,
            description="PostgreSQL from inside the VPC only",
            ingress=[aws.ec2.SecurityGroupIngressArgs(**rds_ingress(cluster_sg))],
            tags=tags,
            opts=child(self),
        )
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-database", subnet_ids=subnet_ids, tags=tags, opts=child(self)
        )
        self.password = random.RandomPassword(
            f"{name}-database", length=32, special=False, opts=child(self)
        )
        self.database = aws.rds.Instance(
            f"{name}-database",
            password=self.password.result,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[database_sg.id],
            **rds_settings(spec),
            tags=tags,
            opts=child(self),
        )

        # IRSA: the services' Kubernetes account assumes a role that may use the bucket.
        issuer = self.cluster.identities.apply(lambda ids: ids[0]["oidcs"][0]["issuer"])
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], opts=child(self)
        )
        trust = pulumi.Output.all(oidc.arn, issuer).apply(lambda v: _web_identity(v[0], v[1]))
        self.services_role = aws.iam.Role(
            f"{name}-services", assume_role_policy=trust, opts=child(self)
        )
        aws.iam.RolePolicy(
            f"{name}-services-bucket",
            role=self.services_role.id,
            policy=self.bucket.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [arn]},
                            {
                                "Effect": "Allow",
                                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                                "Resource": [f"{arn}/*"],
                            },
                        ],
                    }
                )
            ),
            opts=child(self),
        )
        autoscaler_trust = pulumi.Output.all(oidc.arn, issuer).apply(
            lambda v: _web_identity(v[0], v[1], account=f"kube-system:{autoscaler.NAME}")
        )
        self.autoscaler_role = aws.iam.Role(
            f"{name}-autoscaler", assume_role_policy=autoscaler_trust, opts=child(self)
        )
        aws.iam.RolePolicy(
            f"{name}-autoscaler",
            role=self.autoscaler_role.id,
            policy=json.dumps(autoscaler.POLICY),
            opts=child(self),
        )
        self.kubeconfig = pulumi.Output.all(
            self.cluster.endpoint, self.cluster.certificate_authority, self.cluster.name
        ).apply(
            lambda v: exec_kubeconfig(
                server=v[0],
                ca=v[1]["data"],
                cluster=v[2],
                command="aws",
                args=["eks", "get-token", "--cluster-name", v[2], "--region", spec.region],
            )
        )
        self.register_outputs({"cluster": self.cluster.name, "bucket": self.bucket.bucket})

    def outputs(self) -> ClusterOutputs:
        return ClusterOutputs(
            kubeconfig=pulumi.Output.secret(self.kubeconfig),
            artifact_root=self.bucket.bucket.apply(lambda b: f"s3://{b}/mlflow"),
            database_host=self.database.address,
            database_user=DATABASE_USER,
            database_password=self.password.result,
            identity_annotations=self.services_role.arn.apply(
                lambda arn: {"eks.amazonaws.com/role-arn": arn}
            ),
            in_cluster_manifests=pulumi.Output.all(
                self.cluster.name, self.autoscaler_role.arn
            ).apply(lambda v: autoscaler.manifests(v[0], self.region, v[1])),
        )

    def _launch_template(
        self, name: str, pool: NodePool, tags: dict[str, str]
    ) -> aws.eks.NodeGroupLaunchTemplateArgs:
        """The pool's launch template (cloud.eks_launch_template: IMDSv2 at hop limit 1, an
        encrypted gp3 root volume), its latest version: a change rolls the group's nodes."""
        settings = eks_launch_template(pool)
        template = aws.ec2.LaunchTemplate(
            f"{name}-{pool.name}-nodes",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                **settings["metadata_options"]
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=mapping["device_name"],
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(**mapping["ebs"]),
                )
                for mapping in settings["block_device_mappings"]
            ],
            tags={**tags, **settings["tags"]},
            opts=child(self),
        )
        return aws.eks.NodeGroupLaunchTemplateArgs(
            id=template.id, version=template.latest_version.apply(str)
        )

    def _nat(
        self,
        name: str,
        spec: InfraSpec,
        vpc: aws.ec2.Vpc,
        private: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> None:
        """Egress for the private nodes (images, EKS and ECR APIs): public subnets with an
        internet gateway, one NAT gateway, the private subnets routed through it."""
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child(self))
        public = self._subnets(name, spec, vpc, "public", tags)
        address = aws.ec2.Eip(f"{name}-nat", domain="vpc", tags=tags, opts=child(self))
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=address.id,
            subnet_id=public[0].id,
            tags=tags,
            opts=child(self, depends_on=[gateway]),
        )
        routes = (
            ("public", public, {"gateway_id": gateway.id}),
            ("private", private, {"nat_gateway_id": nat.id}),
        )
        for side, subnets, target in routes:
            table = aws.ec2.RouteTable(f"{name}-{side}", vpc_id=vpc.id, tags=tags, opts=child(self))
            aws.ec2.Route(
                f"{name}-{side}-default",
                route_table_id=table.id,
                destination_cidr_block="0.0.0.0/0",
                **target,
                opts=child(self),
            )
            for zone, subnet in zip("abc", subnets, strict=True):
                aws.ec2.RouteTableAssociation(
                    f"{name}-{side}-routes-{zone}",
                    subnet_id=subnet.id,
                    route_table_id=table.id,
                    opts=child(self),
                )

    def _subnets(
        self, name: str, spec: InfraSpec, vpc: aws.ec2.Vpc, side: str, tags: dict[str, str]
    ) -> list[aws.ec2.Subnet]:
        """One subnet per zone; `public` ones only route to the internet gateway: nothing in
        them gets a public IP but the NAT gateway and load balancers."""
        cidrs = AWS_PUBLIC_SUBNETS if side == "public" else AWS_PRIVATE_SUBNETS
        role = "kubernetes.io/role/elb" if side == "public" else "kubernetes.io/role/internal-elb"
        return [
            aws.ec2.Subnet(
                f"{name}-{side}-{zone}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=f"{spec.region}{zone}",
                map_public_ip_on_launch=False,
                tags={**tags, role: "1"},
                opts=child(self),
            )
            for zone, cidr in zip("abc", cidrs, strict=True)
        ]
