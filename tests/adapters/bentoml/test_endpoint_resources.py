"""Per-endpoint pod sizes on the cluster (`server.kubernetes.endpoints`): the manifests one
endpoint's entry changes, and only those, validated with kubernetes-validate --strict."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.adapters.bentoml.test_kubernetes import validate


def test_one_endpoint_gets_gpus_and_its_own_size_the_others_the_defaults(workdir: Path) -> None:
    """A GPU cluster serves CPU models too: `endpoints` sizes one endpoint alone, and only
    pods that request a GPU go to (and tolerate) the GPU pools."""
    import pydantic

    from stack_bentoml.config import KubernetesTarget
    from stack_bentoml.kubernetes import version_objects

    spot = {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Exists"}
    target = KubernetesTarget.model_validate(
        {
            "image": "registry.example.com/{model}:v{version}",
            "gpu_tolerations": [spot],
            "endpoints": {"llm-qa": {"gpus": 1, "memory": "16Gi", "min_replicas": 3}},
        }
    )
    llm = version_objects(target, "llm-qa", "llm@1")
    churn = version_objects(target, "churn", "churn@1")

    pod = llm[0]["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"] == {"memory": "16Gi", "nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"mlstack.io/gpu": "true"}
    assert [t["key"] for t in pod["tolerations"]] == [spot["key"], "nvidia.com/gpu"]
    assert llm[2]["spec"]["minReplicas"] == 3  # its autoscaler

    cpu = churn[0]["spec"]["template"]["spec"]
    assert cpu["containers"][0]["resources"]["limits"] == {"memory": "2Gi"}
    assert "nodeSelector" not in cpu and "tolerations" not in cpu
    assert churn[2]["spec"]["minReplicas"] == 2

    documents = yaml.safe_dump_all([*llm[:3], *churn[:3]])
    checked = validate(documents, workdir)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    with pytest.raises(pydantic.ValidationError, match=r"endpoints\.llm-qa\.gpu\n"):
        KubernetesTarget.model_validate({"endpoints": {"llm-qa": {"gpu": 1}}})
    # a key that is no endpoint name (one `mlstack deploy --endpoint` would refuse) too
    with pytest.raises(pydantic.ValidationError, match=r"endpoints\.llm qa\.\[key\]\n"):
        KubernetesTarget.model_validate({"endpoints": {"llm qa": {"gpus": 1}}})
