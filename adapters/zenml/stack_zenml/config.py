"""The `orchestrator:` section of stack.yaml for ZenML."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ZenmlConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    config_path: str | None = Field(
        default=None,
        description="ZenML's config folder (ZENML_CONFIG_PATH); default: `zenml/` under the "
        "stack's home, so the runs of this stack never mix with others'.",
    )
    stack: str | None = Field(
        default=None, description="The ZenML stack to run on; default: ZenML's active stack."
    )
