"""Lineage: typed nodes (data snapshot, feature view, run, model version, …) and edges."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NodeKind(StrEnum):
    DATA_SNAPSHOT = "data_snapshot"
    FEATURE_VIEW = "feature_view"
    RUN = "run"
    PIPELINE_RUN = "pipeline_run"
    MODEL_VERSION = "model_version"
    PROMPT_VERSION = "prompt_version"
    ENDPOINT_REVISION = "endpoint_revision"
    REPORT = "report"


@dataclass(frozen=True, slots=True)
class NodeRef:
    kind: NodeKind
    key: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.key}"

    @classmethod
    def parse(cls, text: str) -> NodeRef:
        kind, sep, key = text.partition(":")
        if not sep or not key:
            raise ValueError(f"{text!r} is not KIND:KEY (e.g. model_version:churn@3)")
        return cls(NodeKind(kind), key)


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """`source` fed into `target` (a run `produced` a model version, a view `fed` a run)."""

    source: NodeRef
    target: NodeRef
    relation: str
