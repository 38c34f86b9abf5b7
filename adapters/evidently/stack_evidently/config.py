"""The `monitor:` section of stack.yaml for the Evidently adapter."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvidentlyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reference_cache: int = Field(
        default=4, ge=1, description="Reference frames kept profiled between checks."
    )
