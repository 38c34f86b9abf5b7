"""GKE's VPC firewall and Envoy Gateway's admission webhook: GKE's own rule for a private
cluster admits the control plane to the nodes on tcp 443 and 10250 only, and the API server
dials a webhook at its pod's port (kubernetes/kubernetes#79739), so both paths add a rule
from the master range to the nodes (their service account) on 9443 and nothing else, on GCP
only and only with the gateway. The posture reads it alike from both paths, and the rule
`the_firewall_admits_the_gateway_webhook` fails where it is missing or admits less."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlstack_infra.policies import violations
from mlstack_infra.posture import Item, from_terraform, item

from tests.infra.conftest import ROOT, RecordingMocks
from tests.infra.test_targets import declare, spec_for
from tests.infra.test_terraform import pulumi_posture, resources, synthesize, synthesized

FIREWALL = "gcp:compute/firewall:Firewall"
#: The rule both paths declare, as the posture reads it.
WEBHOOK_RULE = item(
    "ingress", "firewall", cidrs=["172.16.0.0/28"], ports=["tcp:9443"], targets="nodes"
)
MISSING = (
    "no firewall rule admits the cluster's control plane (172.16.0.0/28) to the nodes on "
    "tcp:9443: Envoy Gateway's admission webhook is never called (GKE's own rule admits 443 "
    "and 10250 only)"
)


def test_pulumi_admits_the_gke_control_plane_to_the_nodes_on_the_webhook_port_only(
    mocks: RecordingMocks,
) -> None:
    pulumi_posture(mocks, "gcp")
    [firewall] = [r.inputs for r in mocks.resources if r.type == FIREWALL]
    email = "mlstack-nodes@project.iam.gserviceaccount.com"  # the nodes' account, as mocked
    assert firewall == {
        "description": "The GKE control plane to Envoy Gateway's admission webhook",
        "network": "mlstack-network-id",
        "project": "acme-ml",
        "direction": "INGRESS",
        "sourceRanges": ["172.16.0.0/28"],
        "allows": [{"protocol": "tcp", "ports": ["9443"]}],
        "targetServiceAccounts": [email],
    }
    # the target is the nodes: every node pool runs as that account
    pools = [r.inputs for r in mocks.resources if r.type == "gcp:container/nodePool:NodePool"]
    assert {p["nodeConfig"]["serviceAccount"] for p in pools} == {email}


def test_terraform_admits_the_gke_control_plane_to_the_nodes_on_the_webhook_port_only(
    terraform_out: Path,
) -> None:
    config = synthesized(terraform_out, "gcp")
    [firewall] = resources(config, "google_compute_firewall").values()
    email = "${google_service_account.mlstack-nodes-account.email}"
    assert {k: v for k, v in firewall.items() if k != "//"} == {
        "name": "mlstack-master-webhooks",
        "description": "The GKE control plane to Envoy Gateway's admission webhook",
        "network": "${google_compute_network.mlstack-network.id}",
        "direction": "INGRESS",
        "source_ranges": ["172.16.0.0/28"],
        "allow": [{"protocol": "tcp", "ports": ["9443"]}],
        "target_service_accounts": [email],
    }
    pools = resources(config, "google_container_node_pool").values()
    assert {p["node_config"]["service_account"] for p in pools} == {email}


@pytest.mark.parametrize("target", ["aws", "azure", "onprem"])
def test_no_other_target_declares_a_gcp_firewall_on_either_path(
    mocks: RecordingMocks, terraform_out: Path, target: str
) -> None:
    pulumi_posture(mocks, target)
    assert not [r for r in mocks.resources if r.type == FIREWALL]
    assert "google_compute_firewall" not in synthesized(terraform_out, target)["resource"]


def test_gke_without_the_gateway_opens_no_webhook_port_on_either_path(
    mocks: RecordingMocks, tmp_path: Path
) -> None:
    declare(mocks, spec_for("gcp", services={"serving": False}))
    assert not [r for r in mocks.resources if r.type == FIREWALL]
    example = ROOT / "infra" / "pulumi" / "Pulumi.gcp-gpu.yaml"
    data = yaml.safe_load(example.read_text())["config"]["mlstack:spec"]
    config = synthesize({**data, "services": {"serving": False}}, tmp_path)
    assert "google_compute_firewall" not in config["resource"]


def test_both_paths_read_the_gke_firewall_alike(mocks: RecordingMocks, terraform_out: Path) -> None:
    pulumi_side = pulumi_posture(mocks, "gcp")
    terraform_side = from_terraform(synthesized(terraform_out, "gcp"))
    for posture in (pulumi_side, terraform_side):
        assert [i for i in posture if i.kind == "ingress"] == [WEBHOOK_RULE]
        [cluster] = [i for i in posture if i.kind == "cluster"]
        assert cluster.get("control_plane_cidr") == "172.16.0.0/28"
        assert "the_firewall_admits_the_gateway_webhook" not in violations(posture)


def test_a_firewall_changed_on_one_path_is_seen_and_refused(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    config = synthesized(terraform_out, "gcp")
    [firewall] = resources(config, "google_compute_firewall").values()
    firewall["allow"] = [{"protocol": "tcp", "ports": ["443"]}]
    drifted = set(from_terraform(config)) ^ set(pulumi_posture(mocks, "gcp"))
    assert {(i.kind, i.name) for i in drifted} == {("ingress", "firewall")}
    assert violations(from_terraform(config))["the_firewall_admits_the_gateway_webhook"] == [
        MISSING
    ]


def test_gke_with_the_gateway_and_no_firewall_rule_is_refused_on_both_paths(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    for posture in (
        pulumi_posture(mocks, "gcp"),
        from_terraform(synthesized(terraform_out, "gcp")),
    ):
        without = [i for i in posture if i != WEBHOOK_RULE]
        assert violations(without) == {"the_firewall_admits_the_gateway_webhook": [MISSING]}


def _with_rule(posture: list[Item], **settings: Any) -> list[Item]:
    return [i for i in posture if i != WEBHOOK_RULE] + [
        item("ingress", "firewall", **{**dict(WEBHOOK_RULE.settings), **settings})
    ]


@pytest.mark.parametrize(
    ("settings", "admitted"),
    [
        ({"ports": ["tcp:443", "tcp:10250"]}, False),  # GKE's own rule, no more
        ({"ports": ["udp:9443"]}, False),
        ({"cidrs": ["10.50.0.0/20"]}, False),  # another range
        ({"targets": "other"}, False),  # instances that are not the nodes
        ({"ports": ["tcp:9000-9999"]}, True),
        ({"ports": ["tcp:all"]}, True),
        ({"cidrs": ["172.16.0.0/12"]}, True),  # a range holding the master's
        ({"targets": "all"}, True),  # every instance in the network, the nodes among them
    ],
)
def test_a_rule_admits_the_webhook_only_from_the_master_range_to_the_nodes_on_its_port(
    mocks: RecordingMocks, settings: dict[str, Any], admitted: bool
) -> None:
    found = violations(_with_rule(pulumi_posture(mocks, "gcp"), **settings))
    assert found == ({} if admitted else {"the_firewall_admits_the_gateway_webhook": [MISSING]})


def test_the_rule_asks_no_firewall_rule_of_gke_without_the_gateway(
    mocks: RecordingMocks,
) -> None:
    posture = pulumi_posture(mocks, "gcp")
    without_gateway = [i for i in posture if i != WEBHOOK_RULE and i.kind != "addon"]
    assert "the_firewall_admits_the_gateway_webhook" not in violations(without_gateway)
