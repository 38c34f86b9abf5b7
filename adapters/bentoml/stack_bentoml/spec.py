"""An endpoint as a file: the versions it holds, their input schema, and its traffic split.

The adapter writes it; every worker of the serving process reads it, and re-reads it when it
changes, so that a new split (a new revision) reaches all workers without a restart. Writes
are atomic (a temporary file renamed over the old one)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Column(BaseModel):
    model_config = _FROZEN

    name: str
    type: str  # MLflow's signature type: double, float, long, integer, boolean, string
    required: bool = True


class TraceSink(BaseModel):
    """Where a served version's requests are traced (MLflow tracing): the stack's tracking
    store and an experiment, created with the stack's artifact location when missing."""

    model_config = _FROZEN

    tracking_uri: str
    experiment: str
    artifact_location: str


class VersionSpec(BaseModel):
    model_config = _FROZEN

    ref: str
    model_tag: str = Field(description="The BentoML model holding the MLflow model's files.")
    model_dir: str
    flavor: str = Field(description="`sklearn` is served natively; anything else via pyfunc.")
    inputs: tuple[Column, ...]
    traces: TraceSink | None = Field(
        default=None, description="Set when the version's tag `mlstack.trace_experiment` asks."
    )


class EndpointSpec(BaseModel):
    model_config = _FROZEN

    name: str
    revision: int
    host: str
    port: int
    versions: dict[str, VersionSpec]
    weights: dict[str, float]
    shadows: tuple[str, ...] = ()
    sticky: bool = Field(default=False, description="A/B: pin a subject to an arm by header.")
    ab_header: str = "x-mlstack-subject"
    log_dir: str
    log_table: str | None = Field(
        default=None, description="PostgreSQL table (URL from the environment); else parquet."
    )
    max_body_bytes: int = 1_048_576
    max_rows: int = 1000
    log_flush_seconds: float = 1.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def live_inputs(self) -> tuple[Column, ...]:
        """The request schema: that of the first live version (all must agree to share one)."""
        first = max(self.weights, key=lambda ref: self.weights[ref])
        return self.versions[first].inputs


def write_spec(spec: EndpointSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(spec.model_dump_json(indent=2))
    os.replace(tmp, path)


def read_spec(path: Path) -> EndpointSpec:
    return EndpointSpec.model_validate_json(path.read_text())
