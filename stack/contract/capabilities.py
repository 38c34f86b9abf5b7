"""What an adapter may declare it can do: one vocabulary per role, tied to the optional protocols.

An adapter's manifest declares capabilities per role (`RoleBinding.capabilities`), a recipe
names those it needs (`requires:` in recipe.yaml), the conformance suites skip by them, and the
core asks for them before it uses an optional protocol. A capability in `PROTOCOLS` is a
promise: the implementation has that protocol's methods, which the adapter registry checks
(`stack.plugins.capabilities`). The others name behaviour of the role's own methods (a server's
`canary` split) or how an orchestrator runs steps (`in_process`).

Users write the values (`canary`, `load_model`); the members are what code compares with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from stack.contract.features import FeatureRepoReader
from stack.contract.orchestration import PipelineCompiler, Scheduler
from stack.contract.registry import InputSchemaReader, ModelLoader, PromptStore
from stack.contract.roles import Role
from stack.contract.serving import (
    ClusterManifests,
    Packager,
    PredictionLogReader,
    Prober,
    ProcessInspector,
)
from stack.contract.tracking import OrphanRunCloser, RunCloser, SpillReplayer, TracingTracker


class Capability(StrEnum):
    """Base of the per-role vocabularies below; `role` says whose a member is."""

    @property
    def role(self) -> Role:
        return _ROLES[type(self)]

    @property
    def protocol(self) -> type | None:
        """The optional protocol this capability promises (None: behaviour, no methods)."""
        return PROTOCOLS.get(self)


class TrackerCapability(Capability):
    ARTIFACTS = "artifacts"
    DATASETS = "datasets"
    MODELS = "models"
    CODE_VERSION = "code_version"
    BUFFERED_METRICS = "buffered_metrics"
    REPLAY = "replay"  # SpillReplayer
    TRACING = "tracing"  # TracingTracker
    CLOSE_RUNS = "close_runs"  # RunCloser
    CLOSE_ORPHAN_RUNS = "close_orphan_runs"  # OrphanRunCloser


class RegistryCapability(Capability):
    ALIASES = "aliases"
    EXCLUSIVE_SERVING = "exclusive_serving"
    LOAD_MODEL = "load_model"  # ModelLoader
    PROMPTS = "prompts"  # PromptStore
    INPUT_SCHEMA = "input_schema"  # InputSchemaReader


class FeaturesCapability(Capability):
    POINT_IN_TIME = "point_in_time"
    ONLINE_FEATURES = "online_features"
    MATERIALIZE = "materialize"
    PLAN = "plan"
    READ_REPO = "read_repo"  # FeatureRepoReader


class OrchestratorCapability(Capability):
    RESUME = "resume"
    IN_PROCESS = "in_process"
    OUT_OF_PROCESS = "out_of_process"
    PARALLEL_STEPS = "parallel_steps"
    COMPILE = "compile"  # PipelineCompiler
    SCHEDULE = "schedule"  # Scheduler


class ServerCapability(Capability):
    CANARY = "canary"
    SHADOW = "shadow"
    AB = "ab"
    PREDICTION_LOG = "prediction_log"  # PredictionLogReader
    KUBERNETES = "kubernetes"  # ClusterManifests
    PROCESSES = "processes"  # ProcessInspector
    PACKAGE = "package"  # Packager
    PROBE = "probe"  # Prober


class MonitorCapability(Capability):
    HTML_REPORT = "html_report"
    PREDICTION_DRIFT = "prediction_drift"
    PERFORMANCE = "performance"
    DATA_QUALITY = "data_quality"


VOCABULARIES: Mapping[Role, type[Capability]] = MappingProxyType(
    {
        Role.TRACKER: TrackerCapability,
        Role.REGISTRY: RegistryCapability,
        Role.FEATURES: FeaturesCapability,
        Role.ORCHESTRATOR: OrchestratorCapability,
        Role.SERVER: ServerCapability,
        Role.MONITOR: MonitorCapability,
    }
)
_ROLES: dict[type[Capability], Role] = {
    vocabulary: role for role, vocabulary in VOCABULARIES.items()
}

#: The optional protocol each capability promises; the core uses it only when declared.
PROTOCOLS: Mapping[Capability, type] = MappingProxyType(
    {
        TrackerCapability.REPLAY: SpillReplayer,
        TrackerCapability.TRACING: TracingTracker,
        TrackerCapability.CLOSE_RUNS: RunCloser,
        TrackerCapability.CLOSE_ORPHAN_RUNS: OrphanRunCloser,
        RegistryCapability.LOAD_MODEL: ModelLoader,
        RegistryCapability.PROMPTS: PromptStore,
        RegistryCapability.INPUT_SCHEMA: InputSchemaReader,
        FeaturesCapability.READ_REPO: FeatureRepoReader,
        OrchestratorCapability.COMPILE: PipelineCompiler,
        OrchestratorCapability.SCHEDULE: Scheduler,
        ServerCapability.PREDICTION_LOG: PredictionLogReader,
        ServerCapability.KUBERNETES: ClusterManifests,
        ServerCapability.PROCESSES: ProcessInspector,
        ServerCapability.PACKAGE: Packager,
        ServerCapability.PROBE: Prober,
    }
)


class UnknownCapability(ValueError):
    """A capability name that is not in its role's vocabulary; the message lists those that are."""


def parse_capabilities(role: Role, names: Iterable[str]) -> frozenset[Capability]:
    """`names` as `role`'s capabilities (members pass through). Raises UnknownCapability
    naming the first unknown one and the role's vocabulary."""
    vocabulary = VOCABULARIES[role]
    parsed: set[Capability] = set()
    for name in names:
        try:
            parsed.add(vocabulary(name))
        except ValueError:
            known = ", ".join(member.value for member in vocabulary)
            raise UnknownCapability(
                f"{name!r} is not a {role.value} capability; the {role.value} capabilities "
                f"are: {known}"
            ) from None
    return frozenset(parsed)
