"""Options of the MLflow adapter in stack.yaml (pydantic only: importing this loads no MLflow)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class MlflowConnection(BaseModel):
    """Where MLflow lives. Left empty, the embedded store under the stack's home is used:
    `sqlite:///<home>/mlflow.db` with artifacts in `<home>/mlartifacts`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracking_uri: str | None = None
    registry_uri: str | None = Field(
        default=None, description="Defaults to the tracking URI, as in MLflow."
    )
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None


class MlflowTrackerConfig(MlflowConnection):
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root for experiments mlstack creates on a local store "
        "(a server with --serve-artifacts chooses its own).",
    )
    batch_size: int = Field(default=1000, ge=1, le=1000, description="Metrics per log_batch.")
    flush_interval_seconds: float = Field(
        default=5.0, ge=0, description="Buffered metrics are written at least this often."
    )
    call_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A metric write or run close the server has not answered in this many "
        "seconds is given up (the points stay buffered, then spill): a hung server holds "
        "a training step up for at most this long.",
    )
    retry_attempts: int = Field(
        default=6, ge=1, description="Tries to write buffered metrics when a run finishes."
    )
    retry_backoff_seconds: float = Field(default=0.5, gt=0)
    retry_backoff_max_seconds: float = Field(default=10.0, gt=0)
    max_buffered_points: int = Field(
        default=1_000_000,
        ge=1000,
        description="Past this many unwritten points, the oldest are saved to the spill folder.",
    )
    spill_dir: str = Field(
        default="tracking-spill",
        description="Where unwritten metrics are saved (relative to the stack's home).",
    )
    serialization: Literal["skops", "cloudpickle"] = Field(
        default="skops",
        description="Format of scikit-learn models: skops (safe: only the types the model "
        "held when it was logged load) or cloudpickle (any object; loading runs code). "
        "Models holding recipe code are stored with cloudpickle either way.",
    )


class MlflowRegistryConfig(MlflowConnection):
    pass
