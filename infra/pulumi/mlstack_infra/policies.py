"""Secure-by-default rules, as functions over a program's security posture (posture.py: the
same form whether the Pulumi program or the CDK Terrain app declared the resources). Each
returns the violations it finds; the tests call them on every target of both paths, and on
resources built to break them so each rule is seen to fail."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlstack_infra import gateway
from mlstack_infra.posture import Item, from_pulumi


@dataclass(frozen=True)
class Declared:
    """A resource as Pulumi's mocks record it (or a policy pack's resource args)."""

    type: str  # e.g. "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    name: str
    inputs: Mapping[str, Any]


Rule = Callable[[list[Item]], list[str]]


def _of(posture: Iterable[Item], kind: str) -> list[Item]:
    return [i for i in posture if i.kind == kind]


def _gateway_installed(posture: Iterable[Item]) -> bool:
    return any(a.name == gateway.RELEASE for a in _of(posture, "addon"))


def buckets_are_private(posture: list[Item]) -> list[str]:
    return [
        f"bucket {b.name} allows public access"
        for b in _of(posture, "bucket")
        if b.get("public_access") != "blocked"
    ]


def storage_is_encrypted(posture: list[Item]) -> list[str]:
    found = [
        f"bucket {b.name} is not encrypted (at rest, or TLS 1.2 in transit)"
        for b in _of(posture, "bucket")
        if b.get("encrypted") is not True
    ]
    found += [
        f"database {d.name} is not encrypted"
        for d in _of(posture, "database")
        if d.get("encrypted") is not True
    ]
    return found


def databases_are_private(posture: list[Item]) -> list[str]:
    return [
        f"database {d.name} is reachable from the internet"
        for d in _of(posture, "database")
        if d.get("public") is not False
    ]


def databases_are_reachable(posture: list[Item]) -> list[str]:
    """A private database must sit in a network the cluster reaches (Azure's flexible server:
    a delegated subnet and a private DNS zone), or nothing can connect to it."""
    return [
        f"database {d.name} is neither public nor in a private network: nothing reaches it"
        for d in _of(posture, "database")
        if d.get("public") is False and d.get("private_network") is False
    ]


def databases_admit_the_cluster_only(posture: list[Item]) -> list[str]:
    """A database's firewall admits the cluster's security group, never addresses: a CIDR
    rule (even the VPC's own) lets every other machine in the network reach PostgreSQL."""
    return [
        f"security group {i.name} admits addresses ({', '.join(i.get('cidrs'))}), not only "
        "the cluster's security group"
        for i in _of(posture, "ingress")
        if i.name == "database" and i.get("cidrs")
    ]


def no_open_ingress(posture: list[Item], *, serving_public: bool = False) -> list[str]:
    """No 0.0.0.0/0 ingress and no load balancer; the one exception is the serving
    gateway's proxies (the Service their EnvoyProxy shapes) when a public one is asked for."""
    found = [
        f"security group {i.name} is open to 0.0.0.0/0"
        for i in _of(posture, "ingress")
        if "0.0.0.0/0" in (i.get("cidrs") or ())
    ]
    for obj in _of(posture, "kubernetes"):
        if obj.get("type") != "LoadBalancer":
            continue
        name = obj.get("object_name")
        if obj.name.startswith("Service "):
            found.append(f"service {name} is a public load balancer")
        elif obj.name.startswith("EnvoyProxy ") and not serving_public:
            found.append(f"the proxies of EnvoyProxy {name} are behind a public load balancer")
    return found


def cluster_endpoint_is_private(posture: list[Item]) -> list[str]:
    found: list[str] = []
    for cluster in _of(posture, "cluster"):
        if not cluster.get("private_endpoint") and not cluster.get("api_access_cidrs"):
            found.append(f"{cluster.name} has a public API endpoint open to all")
        if not cluster.get("private_nodes"):
            found.append(f"{cluster.name} has nodes with public addresses")
    return found


def no_static_keys(posture: list[Item]) -> list[str]:
    """Workload identity / IRSA, never long-lived cloud keys."""
    return [f"static cloud key {k.name}" for k in _of(posture, "static_key")]


def non_root_pods_name_their_user(posture: list[Item]) -> list[str]:
    """runAsNonRoot without runAsUser is refused at admission for an image whose user is root
    (or a name, as redis's is): every such container says which user it runs as."""
    return [
        f"{obj.name}: container {name} is runAsNonRoot with no runAsUser"
        for obj in _of(posture, "kubernetes")
        for name, non_root, user in obj.get("run_as") or ()
        if non_root and user is None
    ]


def _admits_anyone(peers: tuple[str, ...]) -> bool:
    return bool({"any", "cidr:0.0.0.0/0", "namespaces:all", "namespaces:all+pods:all"} & set(peers))


def _gateway_listener(policy: Item, peers: tuple[str, ...], ports: tuple[Any, ...]) -> bool:
    """The one rule that may admit every pod of the cluster (and, with `serving_public`,
    every address): the gateway proxies' listener, on its port only."""
    return (
        policy.name == f"NetworkPolicy {gateway.PROXY_NAMESPACE}/{gateway.LISTENER_POLICY}"
        and ports == (str(gateway.PROXY_PORT),)
        and bool(peers)
    )


def no_allow_all_ingress(posture: list[Item], *, serving_public: bool = False) -> list[str]:
    """No NetworkPolicy admits every source (a rule with no `from`, an empty peer, every
    namespace, 0.0.0.0/0): a public gateway's clients reach its proxies, in Envoy Gateway's
    namespace, not the endpoints' pods. The proxies' listener alone admits every namespace
    (the Gateway serves the cluster), and 0.0.0.0/0 only when a public gateway is asked for."""
    found = []
    for policy in _of(posture, "kubernetes"):
        if not policy.name.startswith("NetworkPolicy "):
            continue
        for peers, ports in policy.get("ingress") or ():
            allowed = {"namespaces:all"} | ({"cidr:0.0.0.0/0"} if serving_public else set())
            if _gateway_listener(policy, peers, ports) and set(peers) <= allowed:
                continue
            if _admits_anyone(peers):
                found.append(f"{policy.name} admits ingress from anyone ({', '.join(peers)})")
    return found


def ingress_is_denied_by_default(posture: list[Item]) -> list[str]:
    """Each namespace the stack creates or installs into denies ingress to every pod no
    policy opens: a NetworkPolicy selecting all its pods, for ingress, with no rule. Envoy
    Gateway's namespace (its release creates it) counts too."""
    denied = {
        policy.name.split(" ", 1)[1].split("/", 1)[0]
        for policy in _of(posture, "kubernetes")
        if policy.name.startswith("NetworkPolicy ")
        and not policy.get("pod_selector")
        and "Ingress" in (policy.get("policy_types") or ())
        and not policy.get("ingress")
    }
    namespaces = [
        str(ns.get("object_name"))
        for ns in _of(posture, "kubernetes")
        if ns.name.startswith("Namespace ")
    ]
    if _gateway_installed(posture):
        namespaces.append(gateway.PROXY_NAMESPACE)
    return [
        f"namespace {ns} has no default-deny ingress NetworkPolicy"
        for ns in namespaces
        if ns not in denied
    ]


def the_gateway_webhook_is_admitted(posture: list[Item]) -> list[str]:
    """Where Envoy Gateway is installed its namespace denies ingress by default, so a policy
    there must admit the API server to the controller's admission webhook (WEBHOOK_PORT):
    unreached, the webhook is skipped (it fails open) for every proxy pod, unseen."""
    if not _gateway_installed(posture):
        return []
    port = str(gateway.WEBHOOK_PORT)
    for policy in _of(posture, "kubernetes"):
        selected = set(policy.get("pod_selector") or ())
        if (
            policy.name.startswith(f"NetworkPolicy {gateway.PROXY_NAMESPACE}/")
            and selected <= set(gateway.CONTROLLER_PODS.items())
            and any(not ports or port in ports for _, ports in policy.get("ingress") or ())
        ):
            return []
    return [
        f"no NetworkPolicy in {gateway.PROXY_NAMESPACE} admits the API server to Envoy "
        f"Gateway's admission webhook (port {port}): it is skipped for every proxy pod"
    ]


def _within(cidr: str, outer: str) -> bool:
    try:
        return ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(outer))
    except (TypeError, ValueError):  # an expression known at apply time, or another family
        return False


def _admits_tcp(allowed: Any, port: int) -> bool:
    """Whether a firewall rule's `protocol:ports` (`tcp:9443`, `tcp:9000-9999`, `tcp:all`,
    `all:all`) admits `port` over TCP."""
    if not isinstance(allowed, str):  # a security group rule's (from, to)
        return False
    protocol, _, ports = allowed.partition(":")
    if protocol not in ("tcp", "6", "all"):
        return False
    if ports == "all":
        return True
    low, _, high = ports.partition("-")
    return int(low) <= port <= int(high or low)


def the_firewall_admits_the_gateway_webhook(posture: list[Item]) -> list[str]:
    """A cluster whose control plane calls from a range of its own (a GKE private cluster's
    master range, `control_plane_cidr`) reaches a pod only where the network's firewall
    admits that range to the nodes on the pod's port: GKE's own rule admits 443 and 10250,
    and the API server dials a webhook at its pod. Where Envoy Gateway is installed, a rule
    must admit it to WEBHOOK_PORT, or the NetworkPolicy that admits it is never reached."""
    if not _gateway_installed(posture):
        return []
    port = gateway.WEBHOOK_PORT
    return [
        f"no firewall rule admits the {cluster.name}'s control plane ({cidr}) to the nodes on "
        f"tcp:{port}: Envoy Gateway's admission webhook is never called (GKE's own rule admits "
        "443 and 10250 only)"
        for cluster in _of(posture, "cluster")
        if (cidr := cluster.get("control_plane_cidr"))
        and not any(
            rule.get("targets") in ("nodes", "all")
            and any(_within(cidr, source) for source in rule.get("cidrs") or ())
            and any(_admits_tcp(allowed, port) for allowed in rule.get("ports") or ())
            for rule in _of(posture, "ingress")
        )
    ]


def network_policies_are_enforced(posture: list[Item]) -> list[str]:
    """The cluster enforces NetworkPolicy (EKS: the VPC CNI add-on's `enableNetworkPolicy`;
    GKE: Dataplane V2; AKS: a network policy engine), or the policies are words."""
    return [
        f"{c.name} does not enforce NetworkPolicy"
        for c in _of(posture, "cluster")
        if c.get("network_policy") is not True
    ]


def _pools_with_off(posture: list[Item], says: Mapping[str, str]) -> list[str]:
    """`node pool NAME <what it says>` for each of `says`' settings a pool has off. Only pools
    whose reader states the setting are judged (GKE's shielding and management, EKS's root
    volume encryption): the other clouds' pools carry none."""
    return [
        f"node pool {pool.name} {said}"
        for pool in _of(posture, "node_pool")
        for setting, said in says.items()
        if pool.get(setting) is False
    ]


def nodes_are_shielded(posture: list[Item]) -> list[str]:
    """GKE's nodes are Shielded VMs with secure boot (no unsigned boot component or kernel
    module loads) and integrity monitoring (each boot measured against a baseline)."""
    return _pools_with_off(
        posture,
        {
            "secure_boot": "does not have secure boot (Shielded VM)",
            "integrity_monitoring": "does not have integrity monitoring (Shielded VM)",
        },
    )


def nodes_are_repaired_and_upgraded(posture: list[Item]) -> list[str]:
    """GKE repairs unhealthy nodes and upgrades them with the control plane, so they get its
    security patches."""
    return _pools_with_off(
        posture, {"auto_repair": "has auto-repair off", "auto_upgrade": "has auto-upgrade off"}
    )


def nodes_require_imdsv2(posture: list[Item]) -> list[str]:
    """EKS's nodes answer instance metadata with a session token only (IMDSv2) and at a hop
    limit of 1, so a pod (one hop past the node) cannot take the node role's credentials.
    Only pools whose reader states the setting (EKS's, from their launch template) are
    judged."""
    found: list[str] = []
    for pool in _of(posture, "node_pool"):
        if pool.get("imds_v2_required") is None:
            continue
        if pool.get("imds_v2_required") is not True:
            found.append(f"node pool {pool.name} allows IMDSv1 (metadata without a token)")
        if pool.get("hop_limit") != 1:
            hops = pool.get("hop_limit") or "not set"
            found.append(
                f"node pool {pool.name} lets pods reach the instance metadata (hop limit "
                f"{hops}, not 1)"
            )
    return found


def node_volumes_are_encrypted(posture: list[Item]) -> list[str]:
    """EKS's nodes' root volumes are encrypted by their launch template, not left to the
    account's default encryption."""
    return _pools_with_off(
        posture,
        {"root_volume_encrypted": "has an unencrypted root volume (or the account's default)"},
    )


def subnets_log_flows(posture: list[Item]) -> list[str]:
    """The nodes' subnetworks keep VPC flow logs: who talked to the nodes, after the fact."""
    return [
        f"subnet {s.name} has no flow logs"
        for s in _of(posture, "subnet")
        if s.get("flow_logs") is not True
    ]


#: Project roles a program may give people: enough to fetch a GKE cluster's credentials.
PEOPLE_ROLES = frozenset({"roles/container.clusterViewer"})


def access_is_the_deployer_role_only(posture: list[Item]) -> list[str]:
    """Who signs in gets the cluster's RBAC (the deployers' Role) and nothing beside it: no
    EKS access policy (AmazonEKSClusterAdminPolicy and its kin act before RBAC), and no
    project role on GCP but the one that fetches credentials."""
    found = [
        f"{a.name} has the EKS access policy {a.get('policy')} (rights beside RBAC)"
        for a in _of(posture, "cluster access policy")
    ]
    found += [
        f"{r.name} has the project role {r.get('role')} (only {', '.join(sorted(PEOPLE_ROLES))})"
        for r in _of(posture, "project role")
        if r.get("role") not in PEOPLE_ROLES
    ]
    return found


RULES: dict[str, Rule] = {
    "buckets_are_private": buckets_are_private,
    "storage_is_encrypted": storage_is_encrypted,
    "databases_are_private": databases_are_private,
    "databases_are_reachable": databases_are_reachable,
    "databases_admit_the_cluster_only": databases_admit_the_cluster_only,
    "no_open_ingress": no_open_ingress,
    "cluster_endpoint_is_private": cluster_endpoint_is_private,
    "no_static_keys": no_static_keys,
    "non_root_pods_name_their_user": non_root_pods_name_their_user,
    "no_allow_all_ingress": no_allow_all_ingress,
    "ingress_is_denied_by_default": ingress_is_denied_by_default,
    "the_gateway_webhook_is_admitted": the_gateway_webhook_is_admitted,
    "the_firewall_admits_the_gateway_webhook": the_firewall_admits_the_gateway_webhook,
    "network_policies_are_enforced": network_policies_are_enforced,
    "access_is_the_deployer_role_only": access_is_the_deployer_role_only,
    "nodes_are_shielded": nodes_are_shielded,
    "nodes_are_repaired_and_upgraded": nodes_are_repaired_and_upgraded,
    "subnets_log_flows": subnets_log_flows,
    "nodes_require_imdsv2": nodes_require_imdsv2,
    "node_volumes_are_encrypted": node_volumes_are_encrypted,
}


#: The rules whose verdict depends on whether a public gateway was asked for.
_KNOW_SERVING_PUBLIC = frozenset({"no_open_ingress", "no_allow_all_ingress"})


def violations(
    resources: Sequence[Declared] | Sequence[Item], *, serving_public: bool = False
) -> dict[str, list[str]]:
    """Every rule's findings over a posture, or over the resources Pulumi declared (read
    into one first); empty when clean."""
    posture = [r for r in resources if isinstance(r, Item)] or from_pulumi(
        r for r in resources if isinstance(r, Declared)
    )
    results: dict[str, list[str]] = {}
    for name, rule in RULES.items():
        found = (
            rule(posture, serving_public=serving_public)  # type: ignore[call-arg]
            if name in _KNOW_SERVING_PUBLIC
            else rule(posture)
        )
        if found:
            results[name] = found
    return results
