"""The images the stack runs: each named with its registry and pinned to one build (a tag
other than `latest`, or a digest), so every node pulls the same thing whatever its
short-name and mirror settings; the spec's images refuse a moving reference, naming the field
and saying what to write; a team's own registry, named in the spec, is what the pods run,
as the image's own user, on both paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlstack_infra import autoscaler, gateway, observability
from mlstack_infra.images import PinnedImage
from mlstack_infra.manifests import MINIO_SECRET, Endpoints, render
from mlstack_infra.posture import pod_template
from mlstack_infra.spec import InfraSpec, SpecError, parse_spec
from mlstack_infra.stack_output import MINIO_ENDPOINT
from mlstack_infra.stores import in_cluster_stores
from pydantic import TypeAdapter

from tests.infra.conftest import ROOT, TARGETS, RecordingMocks, run_program
from tests.infra.test_targets import services_group
from tests.infra.test_terraform import EXAMPLES, resources, synthesize

QUALIFIED = {
    "Deployment redis": "docker.io/library/redis:7.4-alpine",
    "Deployment feature-server": "docker.io/feastdev/feature-server:0.67.0",
    "StatefulSet postgres": "docker.io/library/postgres:16-alpine",
    "Job mlstack-databases": "docker.io/library/postgres:16-alpine",
}
#: A team's registry for the three images that had short names.
MIRRORED = {
    "redis_image": "registry.acme.internal:5000/library/redis:7.4-alpine",
    "feast_image": "registry.acme.internal:5000/feastdev/feature-server@sha256:" + "f" * 64,
    "postgres_image": "registry.acme.internal:5000/library/postgres:16-alpine",
}


def example(target: str, **changes: Any) -> dict[str, Any]:
    """The example stack's spec for `target`, as data, with `changes`."""
    text = (ROOT / "infra" / "pulumi" / EXAMPLES[target]).read_text()
    return {**yaml.safe_load(text)["config"]["mlstack:spec"], **changes}


def workloads(spec: InfraSpec) -> list[dict[str, Any]]:
    """Everything either path applies that runs a container, for `spec`."""
    endpoints = Endpoints("s3://b/mlflow", "db.internal")
    if spec.target == "onprem":
        endpoints = Endpoints(
            "s3://mlflow/artifacts",
            "postgres.mlstack",
            artifact_env={"MLFLOW_S3_ENDPOINT_URL": MINIO_ENDPOINT},
            artifact_secret=MINIO_SECRET,
        )
    objects = render(spec, endpoints) + gateway.objects(spec) + observability.manifests(spec)
    if spec.target == "onprem":
        objects += in_cluster_stores(spec)
    if spec.target == "aws":
        objects += autoscaler.manifests("mlstack", "us-east-1", "arn:aws:iam::1:role/autoscaler")
    return objects


def images(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Each workload's image (`Kind name`; `Kind name/container` where it has several)."""
    found: dict[str, str] = {}
    for obj in objects:
        template = pod_template(obj)
        if template is None:
            continue
        pod = template["spec"]
        containers = [*pod.get("initContainers", []), *pod["containers"]]
        key = f"{obj['kind']} {obj['metadata']['name']}"
        for container in containers:
            name = key if len(containers) == 1 else f"{key}/{container['name']}"
            found[name] = container["image"]
    return found


def registry(image: str) -> str | None:
    """The registry host an image reference names, or None for a short name (`redis:7`,
    `feastdev/feature-server:0.67.0`), which each node resolves its own way."""
    first, slash, _ = image.partition("/")
    named = "." in first or ":" in first or first == "localhost"
    return first if slash and named else None


@pytest.mark.parametrize("target", TARGETS)
def test_every_image_the_stack_runs_names_its_registry_and_one_build(target: str) -> None:
    spec = parse_spec(example(target, services={"prometheus": {}, "monitoring": [{"model": "m"}]}))
    found = images(workloads(spec))
    assert len(found) >= 6
    pinned = TypeAdapter(PinnedImage)
    for name, image in found.items():
        assert registry(image), f"{name}: {image} names no registry"
        assert pinned.validate_python(image) == image
    expected = {k: v for k, v in QUALIFIED.items() if k in found}
    assert {k: found[k] for k in expected} == expected
    assert ("StatefulSet postgres" in found) == (target == "onprem")
    assert ("Job mlstack-databases" in found) == (target in ("aws", "onprem"))


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
        (
            "redis_image",
            "registry.acme.internal:5000/library/redis",
            "mlstack:spec: redis_image: 'registry.acme.internal:5000/library/redis' has no tag",
        ),
        (
            "feast_image",
            "feastdev/feature-server:latest",
            "mlstack:spec: feast_image: 'feastdev/feature-server:latest' is tagged 'latest'",
        ),
        (
            "postgres_image",
            "postgres:16 alpine",
            "mlstack:spec: postgres_image: 'postgres:16 alpine' is not an image reference",
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


def test_a_mirror_runs_as_the_images_own_user() -> None:
    spec = parse_spec(example("aws", **MIRRORED))
    objects = {
        f"{o['kind']} {o['metadata']['name']}": o for o in render(spec, Endpoints("s3://b", "db"))
    }
    for name, user in (("Deployment redis", 999), ("Deployment feature-server", 1001)):
        template = pod_template(objects[name])
        assert template is not None
        pod = template["spec"]
        assert pod["securityContext"]["runAsUser"] == user, name
        [container] = pod["containers"]
        assert {"name": "HOME", "value": "/tmp"} not in container.get("env", []), name


def _mirrored(objects: list[dict[str, Any]]) -> dict[str, str]:
    found = images(objects)
    return {name: found[name] for name in QUALIFIED}


EXPECTED_MIRRORED = {
    "Deployment redis": MIRRORED["redis_image"],
    "Deployment feature-server": MIRRORED["feast_image"],
    "StatefulSet postgres": MIRRORED["postgres_image"],
    "Job mlstack-databases": MIRRORED["postgres_image"],
}


def test_the_pulumi_program_runs_the_images_the_spec_names(mocks: RecordingMocks) -> None:
    import pulumi
    from mlstack_infra.program import build

    spec = parse_spec(example("onprem", **MIRRORED))
    run_program(lambda: build(spec, kubeconfig=pulumi.Output.secret("apiVersion: v1")))
    [group] = services_group(mocks.resources)
    assert _mirrored(list(group.inputs["objs"])) == EXPECTED_MIRRORED


def test_the_terraform_path_runs_the_images_the_spec_names(tmp_path: Path) -> None:
    config = synthesize(example("onprem", **MIRRORED), tmp_path)
    release = resources(config, "helm_release")["mlstack-services-release"]
    assert _mirrored(json.loads(release["values"][0])["objects"]) == EXPECTED_MIRRORED
