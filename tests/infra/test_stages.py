"""A first apply against a private API endpoint, in two stages: the cluster (every cloud
resource, nothing that talks to the Kubernetes API) from anywhere, then the services from
where the API is reached. Pulumi: `mlstack:stage: cluster`, then the default `all`;
Terraform: `terraform apply -target=...` over `stages.json`'s `cluster`, then a plain apply.
The second stage depends on nothing of the first but its outputs (attributes of its
resources), and the first on nothing of the second."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import TARGETS, RecordingMocks, run_program
from tests.infra.test_terraform import example_spec, synthesized

REFERENCE = re.compile(r"\$\{([a-z][a-z0-9_]*)\.([A-Za-z0-9_-]+)")


def _references(value: Any) -> set[str]:
    """The resources a resource's attributes or `depends_on` name (`type.name`)."""
    text = json.dumps(value)
    found = {f"{kind}.{name}" for kind, name in REFERENCE.findall(text)}
    if isinstance(value, dict):
        found |= set(value.get("depends_on") or [])
    return {r for r in found if r.split(".", 1)[0] not in ("var", "path", "data", "local")}


@pytest.mark.parametrize("target", ["aws", "gcp", "azure"])
def test_the_pulumi_cluster_stage_declares_nothing_in_the_cluster(
    mocks: RecordingMocks, target: str
) -> None:
    from mlstack_infra.program import build

    run_program(lambda: build(example_spec(target), stage="cluster"))
    types = {r.type for r in mocks.resources}
    assert not {t for t in types if "kubernetes" in t}, "stage 1 would need the API"
    clusters = {
        "aws:eks/cluster:Cluster",
        "gcp:container/cluster:Cluster",
        "azure-native:containerservice:ManagedCluster",
    }
    assert clusters & types


def test_the_pulumi_services_stage_adds_the_services(mocks: RecordingMocks) -> None:
    from mlstack_infra.program import build

    run_program(lambda: build(example_spec("aws")))
    assert "kubernetes:yaml/v2:ConfigGroup" in {r.type for r in mocks.resources}


@pytest.mark.parametrize("target", TARGETS)
def test_the_terraform_stages_split_the_configuration_and_the_second_uses_only_the_firsts_outputs(
    terraform_out: Path, target: str
) -> None:
    config = synthesized(terraform_out, target)
    stages = json.loads((terraform_out / target / "stages.json").read_text())
    resources = {
        f"{kind}.{name}": body
        for kind, named in config["resource"].items()
        for name, body in named.items()
    }
    cluster, services = set(stages["cluster"]), set(stages["services"])
    assert cluster | services == set(resources) and not cluster & services
    assert services and all(a.startswith(("kubernetes_", "helm_")) for a in services)
    assert not [a for a in cluster if a.startswith(("kubernetes_", "helm_"))]
    for address in cluster:  # stage 1's closure stays in stage 1 (-target pulls it in)
        assert _references(resources[address]) <= cluster, address
    for address in services:
        assert _references(resources[address]) <= cluster | services, address
    # the providers of stage 2 are configured from stage 1's attributes only
    for provider in ("kubernetes", "helm"):
        for block in config["provider"][provider]:
            assert _references(block) <= cluster, provider
    data = config.get("data") or {}
    assert not [kind for kind in data if kind.startswith(("kubernetes_", "helm_"))]


def test_an_unknown_stage_is_refused_naming_the_setting(mocks: RecordingMocks) -> None:
    import pulumi
    import yaml
    from mlstack_infra.program import main
    from mlstack_infra.spec import SpecError

    spec = yaml.safe_load(
        (Path(__file__).parents[2] / "infra/pulumi/Pulumi.aws-gpu.yaml").read_text()
    )
    pulumi.runtime.set_all_config(
        {"mlstack:spec": json.dumps(spec["config"]["mlstack:spec"]), "mlstack:stage": "network"}
    )
    try:
        with pytest.raises(SpecError, match=r"mlstack:stage: 'network' is not one of all, cluster"):
            main()
    finally:
        pulumi.runtime.set_all_config({})
    assert not mocks.resources  # refused before any resource
