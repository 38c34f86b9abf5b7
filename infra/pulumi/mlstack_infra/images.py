"""Image references in the spec: each names one build (a tag other than `latest`, or a
digest) and, by default, its registry: a short name (`redis:7.4-alpine`) resolves through
each node's registry configuration (CRI-O and containerd with short-name modes refuse it or
ask; mirrors differ), and an untagged one means `latest`, which a node may pull differently
from one day to the next. No Pulumi here: the Terraform app imports it too."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

#: [registry[:port]/]path[:tag][@sha256:digest], as `docker pull` reads it.
_IMAGE = re.compile(
    r"^([a-z0-9.-]+(:\d+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)

#: The defaults of the spec's images, registry named. A mirror named instead must hold the
#: same image: the pods run as its user (manifests.REDIS_USER, FEAST_USER; the databases
#: Job as 70, the alpine image's `postgres`).
MLSTACK = "ghcr.io/mlstack/mlstack:0.1.0"
MLFLOW = "ghcr.io/mlflow/mlflow:v3.17.2-full"
INSTALLER = "docker.io/alpine/k8s:1.33.4"
REDIS = "docker.io/library/redis:7.4-alpine"
FEAST = "docker.io/feastdev/feature-server:0.67.0"
POSTGRES = "docker.io/library/postgres:16-alpine"


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
