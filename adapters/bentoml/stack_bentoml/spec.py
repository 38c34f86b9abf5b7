"""An endpoint as a file: the versions it holds, their input schema, and its traffic split.

The adapter writes it; every worker of the serving process reads it, and re-reads it when it
changes, so that a new split (a new revision) reaches all workers without a restart. Writes
are atomic (a temporary file renamed over the old one). The versions a split needs are
loaded before it is written: `staged` ones first, in a revision of their own (see
`EndpointSpec.loads`), so that taking the split itself costs a worker no load."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stack.atomic import write_atomic

_FROZEN = ConfigDict(frozen=True, extra="forbid")

#: the endpoint file's name, in its endpoint's folder and in a bento
SPEC_FILE = "endpoint.json"

#: MLflow's scalar column types, each a JSON value in a request (see schema.py for how).
SCALAR_TYPES = frozenset(
    {"double", "float", "long", "integer", "boolean", "string", "datetime", "binary"}
)
#: MLflow 3's structured types: their structure (items, properties, values) is kept.
NESTED_TYPES = frozenset({"array", "object", "map", "any"})
#: how long a worker waits on a version in its own process when the split names no deadline
DEFAULT_DEADLINE_MS = 10_000.0  # generous: an LLM app may take seconds per answer


class Column(BaseModel):
    model_config = _FROZEN

    name: str
    type: str  # MLflow's signature type: one of SCALAR_TYPES or NESTED_TYPES
    required: bool = True
    nested: dict[str, Any] | None = Field(
        default=None,
        description="For array/object/map/any: MLflow's JSON of the type (its `items`, "
        "`properties` or `values`), as the signature holds it.",
    )

    @classmethod
    def from_signature(cls, entry: Mapping[str, Any]) -> Column:
        """A column of an MLflow column signature, from its JSON entry
        (`{"type": "integer", "name": "rooms", "required": true}`, or an array/object/map
        with its structure). Raises ValueError naming the column when serving cannot take
        its type: a tensor signature, or a type this MLflow does not define."""
        name = str(entry.get("name", ""))
        kind = str(entry.get("type", ""))
        required = bool(entry.get("required", True))
        if kind in SCALAR_TYPES:
            return cls(name=name, type=kind, required=required)
        body = {k: v for k, v in entry.items() if k not in ("name", "required")}
        check_type(body, f"column {name!r}")
        return cls(name=name, type=kind, required=required, nested=body)

    def type_json(self) -> dict[str, Any]:
        """The column's type as MLflow writes it: `{"type": ...}` plus any structure."""
        return dict(self.nested) if self.nested is not None else {"type": self.type}


def check_type(node: Any, where: str) -> None:
    """Raise ValueError (naming `where`) unless `node` is an MLflow type JSON serving knows."""
    kind = node.get("type") if isinstance(node, Mapping) else None
    if kind in SCALAR_TYPES or kind == "any":
        return
    if kind == "array" and "items" in node:
        check_type(node["items"], f"{where} (items)")
    elif kind == "map" and "values" in node:
        check_type(node["values"], f"{where} (values)")
    elif kind == "object" and isinstance(node.get("properties"), Mapping):
        for key, value in node["properties"].items():
            check_type(value, f"{where}.{key}")
    elif kind in NESTED_TYPES:
        raise ValueError(
            f"{where} is an {kind} without its structure (items, properties or values), so "
            "its values cannot be checked: import it with Column.from_signature"
        )
    elif kind == "tensor":
        raise ValueError(
            f"{where} is a tensor: serving takes a column signature (log the model with a "
            "pandas DataFrame as its input example)"
        )
    else:
        raise ValueError(f"{where} has a type serving does not know: {node!r}")


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
    champion: str | None = Field(
        default=None,
        description="The version answering inside the worker (every other runs in a process "
        "of its own); None: the heaviest. A rollout keeps its serving version here until the "
        "challenger's promotion, also while the challenger takes all the traffic.",
    )
    challenger_deadline_ms: float = Field(
        default=DEFAULT_DEADLINE_MS,
        gt=0,
        description="A version in its own process answering later than this is a miss: the "
        "champion answers and the miss is logged against the version (status 504).",
    )
    staged: tuple[str, ...] = Field(
        default=(),
        description="Versions every worker loads in processes of their own before a split "
        "routes to them: they take no traffic yet.",
    )
    staged_in_worker: tuple[str, ...] = Field(
        default=(),
        description="Versions every worker loads inside itself before a split makes one of "
        "them its champion (a promotion).",
    )
    ab_header: str = "x-mlstack-subject"
    log_dir: str
    log_table: str | None = Field(
        default=None, description="PostgreSQL table (URL from the environment); else parquet."
    )
    spill_dir: str | None = Field(
        default=None,
        description="Where log rows wait while the log refuses them (spill.py); None: "
        "$TMPDIR/mlstack-prediction-spill/<name>.",
    )
    max_body_bytes: int = 1_048_576
    max_depth: int = Field(default=32, description="Arrays/objects nested deeper: 422.")
    max_rows: int = 1000
    log_flush_seconds: float = 1.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def in_worker(self) -> str:
        """The version the worker runs in its own process (see `champion`)."""
        if self.champion is not None and self.champion in self.weights:
            return self.champion
        return max(self.weights, key=lambda ref: self.weights[ref])

    def loads(self) -> frozenset[tuple[str, bool]]:
        """What a worker holds for this revision: each (version, in a process of its own)
        its split routes or shadows to, and each staged one."""
        champion = self.in_worker()
        routed = {(ref, ref != champion) for ref in [*self.weights, *self.shadows]}
        staged = {(ref, True) for ref in self.staged}
        return frozenset(routed | staged | {(ref, False) for ref in self.staged_in_worker})

    def live_inputs(self) -> tuple[Column, ...]:
        """The request schema: that of the first live version (all must agree to share one)."""
        first = max(self.weights, key=lambda ref: self.weights[ref])
        return self.versions[first].inputs


def write_spec(spec: EndpointSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, spec.model_dump_json(indent=2))


def read_spec(path: Path) -> EndpointSpec:
    return EndpointSpec.model_validate_json(path.read_text())
