"""Image references in the spec: each names one build (a tag other than `latest`, or a
digest): an untagged one means `latest`, which a node may pull differently from one day to
the next. No Pulumi here: the Terraform app imports it too."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

#: [registry[:port]/]path[:tag][@sha256:digest], as `docker pull` reads it.
_IMAGE = re.compile(
    r"^([a-z0-9.-]+(:\d+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)

#: The defaults of the spec's images, registry named.
MLSTACK = "ghcr.io/mlstack/mlstack:0.1.0"
MLFLOW = "ghcr.io/mlflow/mlflow:v3.17.2-full"
INSTALLER = "docker.io/alpine/k8s:1.33.4"


def _pinned_image(value: str) -> str:
    """An image reference that names one build: a tag other than `latest`, or a digest."""
    if not _IMAGE.match(value):
        raise ValueError(f"{value!r} is not an image reference (like {MLSTACK!r})")
    name, _, digest = value.partition("@")
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    repository = name.removesuffix(f":{tag}") if tag else name
    instead = f"name a version ('{repository}:VERSION') or a digest ('{repository}@sha256:DIGEST')"
    if tag == "latest":
        raise ValueError(f"{value!r} is tagged 'latest', which moves: {instead}")
    if not tag and not digest:
        raise ValueError(
            f"{value!r} has no tag or digest (Kubernetes would pull 'latest', which moves): "
            f"{instead}"
        )
    return value


PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
