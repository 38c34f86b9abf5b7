"""The `orchestrator:` section of stack.yaml for Kubeflow Pipelines."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class KfpConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str | None = Field(
        default=None,
        description="A KFP API endpoint (https://kfp.example.com); default: run locally with "
        "kfp.local's subprocess runner (no cluster, no Docker).",
    )
    image: str = Field(
        default="python:3.11-slim",
        description="The image each step runs in on a cluster: one with mlstack, the stack's "
        "adapters and the recipe's code (`mlstack image build`).",
    )
    namespace: str | None = Field(default=None, description="The KFP namespace (multi-user).")
    experiment: str = Field(default="mlstack", description="The KFP experiment runs go to.")
    timeout_seconds: float = Field(default=3600, gt=0, description="How long `run` waits.")
