"""GKE's nodes and network, hardened alike on both paths: every node pool runs Shielded VM
nodes (secure boot, integrity monitoring) that GKE repairs and upgrades, and the nodes'
subnetwork keeps VPC flow logs. The posture reads these from both paths, so a setting dropped
on one path is seen as drift, and the rules `nodes_are_shielded`,
`nodes_are_repaired_and_upgraded` and `subnets_log_flows` refuse a stack without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlstack_infra.policies import Declared, violations
from mlstack_infra.posture import Item, from_pulumi, from_terraform, item

from tests.infra.conftest import RecordingMocks
from tests.infra.test_terraform import pulumi_posture, resources, synthesized

NODE_POOL = "gcp:container/nodePool:NodePool"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
SHIELDED = {"enable_secure_boot": True, "enable_integrity_monitoring": True}
MANAGED = {"auto_repair": True, "auto_upgrade": True}
FLOW_LOGS = {"aggregation_interval": "INTERVAL_10_MIN", "flow_sampling": 0.5}
HARDENED = {
    "secure_boot": True,
    "integrity_monitoring": True,
    "auto_repair": True,
    "auto_upgrade": True,
}
NODES_SUBNET = item("subnet", "10.50.0.0/20", flow_logs=True)
RULES = {"nodes_are_shielded", "nodes_are_repaired_and_upgraded", "subnets_log_flows"}


def test_pulumi_declares_shielded_managed_nodes_and_flow_logs(mocks: RecordingMocks) -> None:
    pulumi_posture(mocks, "gcp")
    pools = [r.inputs for r in mocks.resources if r.type == NODE_POOL]
    assert len(pools) == 2
    for pool in pools:
        assert pool["nodeConfig"]["shieldedInstanceConfig"] == {
            "enableSecureBoot": True,
            "enableIntegrityMonitoring": True,
        }
        assert pool["management"] == {"autoRepair": True, "autoUpgrade": True}
    [subnet] = [r.inputs for r in mocks.resources if r.type == SUBNETWORK]
    assert subnet["logConfig"] == {"aggregationInterval": "INTERVAL_10_MIN", "flowSampling": 0.5}


def test_terraform_declares_shielded_managed_nodes_and_flow_logs(terraform_out: Path) -> None:
    config = synthesized(terraform_out, "gcp")
    pools = resources(config, "google_container_node_pool").values()
    assert len(pools) == 2
    for pool in pools:
        assert pool["node_config"]["shielded_instance_config"] == SHIELDED
        assert pool["management"] == MANAGED
    [subnet] = resources(config, "google_compute_subnetwork").values()
    assert subnet["log_config"] == FLOW_LOGS


def test_both_paths_read_the_node_hardening_and_flow_logs_alike(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    for posture in (
        pulumi_posture(mocks, "gcp"),
        from_terraform(synthesized(terraform_out, "gcp")),
    ):
        pools = [i for i in posture if i.kind == "node_pool"]
        assert {p.name for p in pools} == {"system", "gpu"}
        for pool in pools:
            assert {k: pool.get(k) for k in HARDENED} == HARDENED
        assert [i for i in posture if i.kind == "subnet"] == [NODES_SUBNET]
        assert not RULES & set(violations(posture))


def test_hardening_dropped_on_one_path_is_seen_and_refused(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    config = synthesized(terraform_out, "gcp")
    gpu = resources(config, "google_container_node_pool")["mlstack-gpu"]
    del gpu["node_config"]["shielded_instance_config"]
    del gpu["management"]
    [subnet] = resources(config, "google_compute_subnetwork").values()
    del subnet["log_config"]
    drifted = set(from_terraform(config)) ^ set(pulumi_posture(mocks, "gcp"))
    assert {(i.kind, i.name) for i in drifted} == {
        ("node_pool", "gpu"),
        ("subnet", "10.50.0.0/20"),
    }
    assert {k: v for k, v in violations(from_terraform(config)).items() if k in RULES} == {
        "nodes_are_shielded": [
            "node pool gpu does not have secure boot (Shielded VM)",
            "node pool gpu does not have integrity monitoring (Shielded VM)",
        ],
        "nodes_are_repaired_and_upgraded": [
            "node pool gpu has auto-repair off",
            "node pool gpu has auto-upgrade off",
        ],
        "subnets_log_flows": ["subnet 10.50.0.0/20 has no flow logs"],
    }


def _without(resources: list[Declared], type_: str, *path: str) -> list[Item]:
    """The Pulumi posture with `path` (camelCase keys) removed from every `type_` resource."""
    changed = []
    for r in resources:
        if r.type == type_:
            inputs: dict[str, Any] = {**r.inputs}
            inner = inputs
            for key in path[:-1]:
                inner[key] = {**inner[key]}
                inner = inner[key]
            inner.pop(path[-1])
            r = Declared(r.type, r.name, inputs)
        changed.append(r)
    return from_pulumi(changed)


@pytest.mark.parametrize(
    ("type_", "path", "rule", "message"),
    [
        (
            NODE_POOL,
            ("nodeConfig", "shieldedInstanceConfig", "enableSecureBoot"),
            "nodes_are_shielded",
            "node pool {} does not have secure boot (Shielded VM)",
        ),
        (
            NODE_POOL,
            ("nodeConfig", "shieldedInstanceConfig", "enableIntegrityMonitoring"),
            "nodes_are_shielded",
            "node pool {} does not have integrity monitoring (Shielded VM)",
        ),
        (
            NODE_POOL,
            ("management", "autoRepair"),
            "nodes_are_repaired_and_upgraded",
            "node pool {} has auto-repair off",
        ),
        (
            NODE_POOL,
            ("management", "autoUpgrade"),
            "nodes_are_repaired_and_upgraded",
            "node pool {} has auto-upgrade off",
        ),
        (SUBNETWORK, ("logConfig",), "subnets_log_flows", "subnet 10.50.0.0/20 has no flow logs"),
    ],
)
def test_each_setting_removed_fails_its_rule_alone(
    mocks: RecordingMocks, type_: str, path: tuple[str, ...], rule: str, message: str
) -> None:
    pulumi_posture(mocks, "gcp")
    found = violations(_without(mocks.resources, type_, *path))
    # each pool (gpu, system) fails; the subnet's message names its range already
    assert found == {rule: sorted({message.format(p) for p in ("gpu", "system")})}


def test_the_rules_judge_only_pools_and_subnets_that_state_the_settings() -> None:
    """EKS's and AKS's pools carry none of GKE's settings: the rules say nothing of them."""
    posture = [item("node_pool", "gpu", machine_type="g5.xlarge")]
    assert not RULES & set(violations(posture))
    assert violations([item("subnet", "10.0.0.0/24")]) == {
        "subnets_log_flows": ["subnet 10.0.0.0/24 has no flow logs"]
    }
