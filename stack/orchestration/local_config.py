"""Options of the local orchestrator in stack.yaml."""

from pydantic import BaseModel, ConfigDict


class LocalOrchestratorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Where step outputs are kept (relative paths are under the stack's home folder), so a
    #: failed run can be resumed in another process.
    outputs_dir: str = "runs"
