"""The lifecycle contract: one Protocol per role and the small value types they exchange.

Everything here is in mlstack's own words; no wrapped tool is imported.
"""

from stack.contract.features import (
    Entity,
    FeatureDefinitions,
    FeatureField,
    FeaturePlan,
    FeatureSource,
    FeatureStore,
    FeatureView,
    FeatureViewRef,
    TrainingFrame,
)
from stack.contract.monitoring import (
    ColumnDrift,
    ColumnPolicy,
    ColumnQuality,
    DriftReport,
    Monitor,
    PerformanceReport,
    QualityReport,
    TaskKind,
)
from stack.contract.orchestration import (
    Orchestrator,
    PipelineCompiler,
    PipelineRun,
    RunState,
    Scheduler,
    StepResult,
    StepStatus,
)
from stack.contract.registry import ModelLoader, ModelSelector, ModelVersion, Registry
from stack.contract.roles import ROLE_PROTOCOLS, Role
from stack.contract.serving import (
    Endpoint,
    HealthReport,
    LoggedRequest,
    PredictionLogReader,
    Server,
    TrafficSplit,
)
from stack.contract.states import (
    ALLOWED_TRANSITIONS,
    EXCLUSIVE_STATES,
    LifecycleState,
    can_transition,
)
from stack.contract.tracking import (
    CodeVersion,
    DatasetFingerprint,
    MetricPoint,
    RunRecord,
    RunRef,
    RunStatus,
    Tracker,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "EXCLUSIVE_STATES",
    "ROLE_PROTOCOLS",
    "CodeVersion",
    "ColumnDrift",
    "ColumnPolicy",
    "ColumnQuality",
    "DatasetFingerprint",
    "DriftReport",
    "Endpoint",
    "Entity",
    "FeatureDefinitions",
    "FeatureField",
    "FeaturePlan",
    "FeatureSource",
    "FeatureStore",
    "FeatureView",
    "FeatureViewRef",
    "HealthReport",
    "LifecycleState",
    "LoggedRequest",
    "MetricPoint",
    "ModelLoader",
    "ModelSelector",
    "ModelVersion",
    "Monitor",
    "Orchestrator",
    "PerformanceReport",
    "PipelineCompiler",
    "PipelineRun",
    "PredictionLogReader",
    "QualityReport",
    "Registry",
    "Role",
    "RunRecord",
    "RunRef",
    "RunState",
    "RunStatus",
    "Scheduler",
    "Server",
    "StepResult",
    "StepStatus",
    "TaskKind",
    "Tracker",
    "TrafficSplit",
    "TrainingFrame",
    "can_transition",
]
