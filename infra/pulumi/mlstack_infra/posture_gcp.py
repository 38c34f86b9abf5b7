"""GCP in a program's security posture: GKE, its node pools (Shielded VM nodes, GKE's repairs
and upgrades), the subnetworks' flow logs, Cloud NAT, the VPC's ingress firewall rules, GCS,
Cloud SQL, Workload Identity bindings and static keys, read from Terraform's attributes
(pulumi_gcp is bridged from that provider: posture.py translates its inputs first)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlstack_infra.posture_items import Item, Of, dig, item, node_pool, one


def read(of: Of, resources: Mapping[str, Mapping[str, Any]]) -> list[Item]:
    """The GCP resources of a configuration (`of(kind)`: the resources of a Terraform type)."""
    found: list[Item] = []
    for grant in of("google_project_iam_member"):  # project roles given to people
        found.append(item("project role", str(grant.get("member")), role=grant.get("role")))
    for gke in of("google_container_cluster"):
        private = one(gke.get("private_cluster_config"))
        networks = dig(gke, "master_authorized_networks_config", "cidr_blocks") or []
        found.append(
            item(
                "cluster",
                "cluster",
                private_endpoint=bool(private.get("enable_private_endpoint")),
                api_access_cidrs=sorted(n["cidr_block"] for n in networks),
                private_nodes=bool(private.get("enable_private_nodes")),
                # where the control plane reaches the nodes from (their firewall must admit it)
                control_plane_cidr=private.get("master_ipv4_cidr_block"),
                workload_identity=bool(dig(gke, "workload_identity_config", "workload_pool")),
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
    for subnet in of("google_compute_subnetwork"):  # a log_config block turns flow logs on
        logs = one(subnet.get("log_config"))
        found.append(
            item(
                "subnet",
                str(subnet.get("ip_cidr_range")),
                flow_logs=bool(logs) and logs.get("flow_sampling") != 0,
            )
        )
    pools = of("google_container_node_pool")
    for rule in of("google_compute_firewall"):
        if (rule.get("direction") or "INGRESS") == "INGRESS" and rule.get("disabled") is not True:
            found.append(
                item(
                    "ingress",
                    "firewall",
                    cidrs=sorted(rule.get("source_ranges") or []),
                    ports=sorted(
                        f"{allowed.get('protocol')}:{port}"
                        for allowed in rule.get("allow") or []
                        for port in allowed.get("ports") or ["all"]
                    ),
                    targets=_targets(rule, pools),
                )
            )
    for pool in pools:
        config = one(pool.get("node_config"))
        autoscaling = one(pool.get("autoscaling"))
        found.append(
            node_pool(
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
                        dig(a, "gpu_driver_installation_config", "gpu_driver_version"),
                    )
                    for a in config.get("guest_accelerator") or []
                ],
                metadata=dig(config, "workload_metadata_config", "mode"),
                taints=config.get("taint"),
                # declared, not left to defaults: GKE's (secure boot off) have changed before
                secure_boot=dig(config, "shielded_instance_config", "enable_secure_boot") is True,
                integrity_monitoring=dig(
                    config, "shielded_instance_config", "enable_integrity_monitoring"
                )
                is True,
                auto_repair=dig(pool, "management", "auto_repair") is True,
                auto_upgrade=dig(pool, "management", "auto_upgrade") is True,
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
                versioned=bool(dig(bucket, "versioning", "enabled")),
                uniform_access=bool(bucket.get("uniform_bucket_level_access")),
            )
        )
    for db in of("google_sql_database_instance"):
        ip = dig(db, "settings", "ip_configuration") or {}
        ip = one(ip)
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
    found += [
        item("static_key", name) for name in resources.get("google_service_account_key") or {}
    ]
    return found


def _targets(rule: Mapping[str, Any], pools: list[Mapping[str, Any]]) -> str:
    """Which instances a firewall rule applies to: `nodes` (the node pools' service accounts
    and no other, or a tag every pool carries), `all` (it names none: every instance in the
    network), else `other`."""
    accounts = set(rule.get("target_service_accounts") or [])
    tags = set(rule.get("target_tags") or [])
    if not accounts and not tags:
        return "all"
    configs = [one(pool.get("node_config")) for pool in pools]
    if accounts and accounts == {c.get("service_account") for c in configs}:
        return "nodes"
    if tags and configs and all(tags & set(c.get("tags") or []) for c in configs):
        return "nodes"
    return "other"


def _gcp_subject(member: str) -> str | None:
    found = re.match(r"^serviceAccount:[^\[]+\.svc\.id\.goog\[([^/]+)/([^\]]+)\]$", member)
    return f"system:serviceaccount:{found[1]}:{found[2]}" if found else None
