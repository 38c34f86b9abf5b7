"""AWS in a program's security posture: EKS, its node groups (with their launch templates),
S3, RDS, the security groups, IRSA roles, the NAT egress and static keys, read from
Terraform's attributes (pulumi_aws is bridged from that provider: posture.py translates its
inputs first)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mlstack_infra.cloud import EKS_POOL_TAG
from mlstack_infra.posture_items import Item, Of, dig, document, item, node_pool, one


def read(of: Of, resources: Mapping[str, Mapping[str, Any]]) -> list[Item]:
    """The AWS resources of a configuration (`of(kind)`: the resources of a Terraform type)."""
    found: list[Item] = []
    subnets = of("aws_subnet")
    for eks in of("aws_eks_cluster"):
        vpc = one(eks.get("vpc_config"))
        found.append(
            item(
                "cluster",
                "cluster",
                private_endpoint=not vpc.get("endpoint_public_access"),
                api_access_cidrs=sorted(vpc.get("public_access_cidrs") or []),
                private_nodes=all(s.get("map_public_ip_on_launch") is False for s in subnets),
                workload_identity=bool(of("aws_iam_openid_connect_provider")),
                secrets_encrypted="secrets" in (dig(eks, "encryption_config", "resources") or []),
                # the VPC CNI enforces NetworkPolicy only when its add-on is configured to
                network_policy=any(
                    a.get("addon_name") == "vpc-cni"
                    and document(a.get("configuration_values")).get("enableNetworkPolicy") == "true"
                    for a in of("aws_eks_addon")
                ),
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
    for entry in of("aws_eks_access_entry"):  # who signs in to the cluster, in which groups
        found.append(
            item(
                "cluster access",
                str(entry.get("principal_arn")),
                kubernetes_groups=sorted(entry.get("kubernetes_groups") or []),
            )
        )
    for grant in of("aws_eks_access_policy_association"):  # an EKS policy beyond RBAC
        found.append(
            item(
                "cluster access policy",
                str(grant.get("principal_arn")),
                policy=grant.get("policy_arn"),
            )
        )
    for group in of("aws_eks_node_group"):
        scaling = one(group.get("scaling_config"))
        found.append(
            node_pool(
                group.get("labels") or {},
                **_launched_with(group, of("aws_launch_template")),
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
                    dig(v, "versioning_configuration", "status") == "Enabled"
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
                    # how many security groups it admits (their ids are known at apply only)
                    security_groups=len(rule.get("security_groups") or []),
                    ports=(rule.get("from_port"), rule.get("to_port")),
                )
            )
    for role in of("aws_iam_role"):
        found += [
            item("identity", s, via="irsa") for s in _subjects(role.get("assume_role_policy"))
        ]
    found += [item("static_key", name) for name in resources.get("aws_iam_access_key") or {}]
    return found


def _launched_with(group: Mapping[str, Any], templates: list[Mapping[str, Any]]) -> dict[str, Any]:
    """What a node group's launch template says of its nodes' instance metadata and root
    volume; False and None where the group names no template. A template is the group's by
    its pool tag (its id is known at apply only, and a mock's on the Pulumi side)."""
    pool = (group.get("labels") or {}).get(EKS_POOL_TAG)
    named = dig(group, "launch_template", "id") or dig(group, "launch_template", "name")
    template = next(
        (t for t in templates if named and (t.get("tags") or {}).get(EKS_POOL_TAG) == pool), {}
    )
    metadata = one(template.get("metadata_options"))
    hops = metadata.get("http_put_response_hop_limit")
    volumes = [one(m.get("ebs")) for m in template.get("block_device_mappings") or []]
    return {
        "imds_v2_required": metadata.get("http_tokens") == "required",
        # Pulumi's inputs carry numbers as floats
        "hop_limit": int(hops) if hops is not None else None,
        "root_volume_encrypted": bool(volumes)
        and all(str(v.get("encrypted")).lower() == "true" for v in volumes),
    }


def _subjects(policy: Any) -> Iterator[str]:
    for statement in document(policy).get("Statement", []):
        if statement.get("Action") == "sts:AssumeRoleWithWebIdentity":
            yield from statement.get("Condition", {}).get("StringEquals", {}).values()
