"""The `orchestrator:` section of stack.yaml for Prefect."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PrefectConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_url: str | None = Field(
        default=None,
        description="A Prefect server's API (http://prefect:4200/api); default: a temporary "
        "local API started for the run, its database under the stack's home.",
    )
    max_workers: int = Field(
        default=1, ge=1, le=64, description="Steps with no order between them run this wide."
    )
    startup_timeout_seconds: float = Field(
        default=180, gt=0, description="For the temporary local API (slow on 2 cores)."
    )
    work_pool: str = Field(
        default="mlstack", description="The work pool `mlstack schedule` deploys to."
    )
