"""The images the stack runs: the spec's images refuse a reference that names no single build
(no tag or digest, or the tag `latest`, which moves), naming the field and saying what to
write."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from mlstack_infra.spec import SpecError, parse_spec

from tests.infra.conftest import ROOT
from tests.infra.test_terraform import EXAMPLES


def example(target: str, **changes: Any) -> dict[str, Any]:
    """The example stack's spec for `target`, as data, with `changes`."""
    text = (ROOT / "infra" / "pulumi" / EXAMPLES[target]).read_text()
    return {**yaml.safe_load(text)["config"]["mlstack:spec"], **changes}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "image",
            "ghcr.io/acme/mlstack",
            "mlstack:spec: image: 'ghcr.io/acme/mlstack' has no tag or digest (Kubernetes "
            "would pull 'latest', which moves): name a version ('ghcr.io/acme/mlstack:VERSION') "
            "or a digest ('ghcr.io/acme/mlstack@sha256:DIGEST')",
        ),
        (
            "mlflow_image",
            "ghcr.io/mlflow/mlflow:latest",
            "mlstack:spec: mlflow_image: 'ghcr.io/mlflow/mlflow:latest' is tagged 'latest', "
            "which moves: name a version ('ghcr.io/mlflow/mlflow:VERSION')",
        ),
        (
            "image",
            "registry.acme.internal:5000/ml/mlstack",  # a port is not a tag
            "mlstack:spec: image: 'registry.acme.internal:5000/ml/mlstack' has no tag",
        ),
    ],
)
def test_an_image_that_names_no_single_build_is_refused_by_field(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(example("aws", **{field: value}))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "image",
    [
        "registry.acme.internal:5000/ml/mlstack:1.4",
        "ghcr.io/acme/mlstack@sha256:" + "a" * 64,
        "ghcr.io/acme/mlstack:1.4@sha256:" + "b" * 64,
    ],
)
def test_an_image_pinned_by_tag_or_digest_is_taken(image: str) -> None:
    assert parse_spec(example("aws", image=image, mlflow_image=image)).image == image
