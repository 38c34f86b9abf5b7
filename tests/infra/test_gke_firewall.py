"""GKE's VPC firewall and Envoy Gateway's admission webhook: GKE's own rule for a private
cluster admits the control plane to the nodes on tcp 443 and 10250 only, and the API server
dials a webhook at its pod's port (kubernetes/kubernetes#79739), so both paths add a rule
from the master range to the nodes (their service account) on 9443 and nothing else, on GCP
only and only with the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import ROOT, RecordingMocks
from tests.infra.test_targets import declare, spec_for
from tests.infra.test_terraform import pulumi_posture, resources, synthesize, synthesized

FIREWALL = "gcp:compute/firewall:Firewall"


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
