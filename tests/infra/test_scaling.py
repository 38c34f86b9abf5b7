"""Node pools start at the spec's `min_size` on every cloud, on both paths: a GPU pool with
`min_size: 0` creates no GPU node until a pod asks for one (the autoscaler scales it from
zero), where AKS's system pool, which cannot be empty, is refused a zero minimum."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlstack_infra.spec import SpecError

from tests.infra.conftest import RecordingMocks
from tests.infra.test_targets import declare, of, spec_for
from tests.infra.test_terraform import resources, synthesized


def test_gpu_pools_with_min_zero_start_with_no_node_on_the_pulumi_path(
    mocks: RecordingMocks,
) -> None:
    declared = declare(mocks, spec_for("aws"))
    groups = {
        r.name: r.inputs["scalingConfig"] for r in of(declared, "aws:eks/nodeGroup:NodeGroup")
    }
    assert groups["mlstack-gpu"] == {"desiredSize": 0, "minSize": 0, "maxSize": 4}
    assert groups["mlstack-system"]["desiredSize"] == 1


def test_an_azure_gpu_pool_with_min_zero_starts_with_no_node(mocks: RecordingMocks) -> None:
    [pool] = of(declare(mocks, spec_for("azure")), "azure-native:containerservice:AgentPool")
    assert (pool.inputs["count"], pool.inputs["minCount"], pool.inputs["maxCount"]) == (0, 0, 4)
    assert pool.inputs["enableAutoScaling"] is True


def test_the_terraform_path_starts_the_example_gpu_pools_at_zero(terraform_out: Path) -> None:
    aws = resources(synthesized(terraform_out, "aws"), "aws_eks_node_group")
    assert aws["mlstack-gpu"]["scaling_config"]["desired_size"] == 0
    assert aws["mlstack-system"]["scaling_config"]["desired_size"] == 2  # its min_size
    azure = resources(synthesized(terraform_out, "azure"), "azurerm_kubernetes_cluster_node_pool")
    assert (azure["mlstack-gpu"]["node_count"], azure["mlstack-gpu"]["min_count"]) == (0, 0)


def test_an_empty_azure_system_pool_is_refused() -> None:
    with pytest.raises(SpecError, match=r"node_pools\[0\]\.min_size: on azure the first node"):
        spec_for(
            "azure",
            node_pools=[{"name": "system", "machine_type": "Standard_D8s_v5", "min_size": 0}],
        )
