"""EKS's nodes, hardened alike on both paths by a launch template per node group
(cloud.eks_launch_template): instance metadata with a session token only (IMDSv2) at a hop
limit of 1, so no pod takes the node role's credentials, and an encrypted gp3 root volume.
The posture reads these per node group from both paths, so a setting dropped on one path is
seen as drift, and the rules `nodes_require_imdsv2` and `node_volumes_are_encrypted` refuse
a stack without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlstack_infra.cloud import EKS_NODE_VOLUME_GB
from mlstack_infra.policies import Declared, violations
from mlstack_infra.posture import Item, from_pulumi, from_terraform, item

from tests.infra.conftest import RecordingMocks
from tests.infra.test_terraform import pulumi_posture, resources, synthesized

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
HARDENED = {"imds_v2_required": True, "hop_limit": 1, "root_volume_encrypted": True}
RULES = {"nodes_require_imdsv2", "node_volumes_are_encrypted"}
ROOT_VOLUME = {
    "device_name": "/dev/xvda",
    "ebs": {
        "volume_size": EKS_NODE_VOLUME_GB,
        "volume_type": "gp3",
        "encrypted": "true",
        "delete_on_termination": "true",
    },
}


def test_pulumi_gives_each_node_group_its_hardened_launch_template(
    mocks: RecordingMocks,
) -> None:
    pulumi_posture(mocks, "aws")
    templates = {r.name: r.inputs for r in mocks.resources if r.type == LAUNCH_TEMPLATE}
    groups = {r.name: r.inputs for r in mocks.resources if r.type == NODE_GROUP}
    assert len(groups) == 2
    for name, group in groups.items():
        template = templates[f"{name}-nodes"]
        assert group["launchTemplate"] == {"id": f"{name}-nodes-id", "version": "1"}
        assert template["metadataOptions"] == {
            "httpEndpoint": "enabled",
            "httpTokens": "required",
            "httpPutResponseHopLimit": 1,
        }
        assert template["blockDeviceMappings"] == [
            {
                "deviceName": "/dev/xvda",
                "ebs": {
                    "volumeSize": EKS_NODE_VOLUME_GB,
                    "volumeType": "gp3",
                    "encrypted": "true",
                    "deleteOnTermination": "true",
                },
            }
        ]
        assert "diskSize" not in group  # EKS refuses it beside a launch template


def test_terraform_gives_each_node_group_its_hardened_launch_template(
    terraform_out: Path,
) -> None:
    config = synthesized(terraform_out, "aws")
    templates = resources(config, "aws_launch_template")
    groups = resources(config, "aws_eks_node_group")
    assert len(groups) == 2
    for name, group in groups.items():
        key = f"{name}-launch-template"
        assert group["launch_template"] == {
            "id": f"${{aws_launch_template.{key}.id}}",
            "version": f"${{aws_launch_template.{key}.latest_version}}",
        }
        assert templates[key]["metadata_options"] == {
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": 1,
        }
        assert templates[key]["block_device_mappings"] == [ROOT_VOLUME]
        assert "disk_size" not in group


def test_both_paths_read_the_node_groups_hardening_alike(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    for posture in (
        pulumi_posture(mocks, "aws"),
        from_terraform(synthesized(terraform_out, "aws")),
    ):
        pools = [i for i in posture if i.kind == "node_pool"]
        assert {p.name for p in pools} == {"system", "gpu"}
        for pool in pools:
            assert {k: pool.get(k) for k in HARDENED} == HARDENED
        assert not RULES & set(violations(posture))


def test_hardening_dropped_on_one_path_is_seen_and_refused(
    mocks: RecordingMocks, terraform_out: Path
) -> None:
    config = synthesized(terraform_out, "aws")
    templates = resources(config, "aws_launch_template")
    gpu = templates["mlstack-gpu-launch-template"]
    gpu["metadata_options"]["http_put_response_hop_limit"] = 2
    gpu["block_device_mappings"][0]["ebs"]["encrypted"] = "false"
    del resources(config, "aws_eks_node_group")["mlstack-system"]["launch_template"]
    drifted = set(from_terraform(config)) ^ set(pulumi_posture(mocks, "aws"))
    assert {(i.kind, i.name) for i in drifted} == {("node_pool", "gpu"), ("node_pool", "system")}
    assert {k: v for k, v in violations(from_terraform(config)).items() if k in RULES} == {
        "nodes_require_imdsv2": [
            "node pool gpu lets pods reach the instance metadata (hop limit 2, not 1)",
            "node pool system allows IMDSv1 (metadata without a token)",
            "node pool system lets pods reach the instance metadata (hop limit not set, not 1)",
        ],
        "node_volumes_are_encrypted": [
            "node pool gpu has an unencrypted root volume (or the account's default)",
            "node pool system has an unencrypted root volume (or the account's default)",
        ],
    }


def _without(resources: list[Declared], type_: str, *path: str) -> list[Item]:
    """The Pulumi posture with `path` (camelCase keys; an int indexes a list) removed from
    every `type_` resource."""
    changed = []
    for r in resources:
        if r.type == type_:
            inputs: Any = {**r.inputs}
            inner = inputs
            for key in path[:-1]:
                index: Any = int(key) if key.isdigit() else key
                inner[index] = (
                    list(inner[index]) if isinstance(inner[index], list) else {**inner[index]}
                )
                inner = inner[index]
            inner.pop(int(path[-1]) if path[-1].isdigit() else path[-1])
            r = Declared(r.type, r.name, inputs)
        changed.append(r)
    return from_pulumi(changed)


@pytest.mark.parametrize(
    ("type_", "path", "found"),
    [
        (
            LAUNCH_TEMPLATE,
            ("metadataOptions", "httpTokens"),
            {"nodes_require_imdsv2": ["node pool {} allows IMDSv1 (metadata without a token)"]},
        ),
        (
            LAUNCH_TEMPLATE,
            ("metadataOptions", "httpPutResponseHopLimit"),
            {
                "nodes_require_imdsv2": [
                    "node pool {} lets pods reach the instance metadata (hop limit not set, not 1)"
                ]
            },
        ),
        (
            LAUNCH_TEMPLATE,
            ("blockDeviceMappings", "0", "ebs", "encrypted"),
            {
                "node_volumes_are_encrypted": [
                    "node pool {} has an unencrypted root volume (or the account's default)"
                ]
            },
        ),
        (
            LAUNCH_TEMPLATE,
            ("blockDeviceMappings",),
            {
                "node_volumes_are_encrypted": [
                    "node pool {} has an unencrypted root volume (or the account's default)"
                ]
            },
        ),
    ],
)
def test_each_setting_removed_fails_its_rule_alone(
    mocks: RecordingMocks, type_: str, path: tuple[str, ...], found: dict[str, list[str]]
) -> None:
    pulumi_posture(mocks, "aws")
    expected = {
        rule: sorted(m.format(p) for m in messages for p in ("gpu", "system"))
        for rule, messages in found.items()
    }
    assert violations(_without(mocks.resources, type_, *path)) == expected


def test_a_node_group_without_its_launch_template_fails_both_rules(
    mocks: RecordingMocks,
) -> None:
    pulumi_posture(mocks, "aws")
    found = violations(_without(mocks.resources, NODE_GROUP, "launchTemplate"))
    assert set(found) == RULES
    assert len(found["nodes_require_imdsv2"]) == 4  # token and hop limit, per pool


def test_the_rules_judge_only_pools_that_state_the_settings() -> None:
    """GKE's and AKS's pools carry none of EKS's launch template settings."""
    posture = [item("node_pool", "gpu", machine_type="n1-standard-8")]
    assert not RULES & set(violations(posture))
