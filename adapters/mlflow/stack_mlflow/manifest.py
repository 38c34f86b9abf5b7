"""What this distribution provides, readable without importing MLflow."""

from stack.contract.capabilities import RegistryCapability, TrackerCapability
from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="mlflow",
    package="mlstack-mlflow",
    description="Runs, metrics, artifacts, datasets and models in MLflow; versions and "
    "lifecycle states in MLflow's model registry (aliases and tags).",
    roles={
        Role.TRACKER: RoleBinding(
            implementation="stack_mlflow.tracker:MlflowTracker",
            config="stack_mlflow.config:MlflowTrackerConfig",
            capabilities=frozenset(
                {
                    TrackerCapability.ARTIFACTS,
                    TrackerCapability.DATASETS,
                    TrackerCapability.MODELS,
                    TrackerCapability.CODE_VERSION,
                    TrackerCapability.BUFFERED_METRICS,
                    TrackerCapability.REPLAY,
                    TrackerCapability.TRACING,
                    TrackerCapability.CLOSE_RUNS,
                    TrackerCapability.CLOSE_ORPHAN_RUNS,
                }
            ),
        ),
        Role.REGISTRY: RoleBinding(
            implementation="stack_mlflow.registry:MlflowRegistry",
            config="stack_mlflow.config:MlflowRegistryConfig",
            capabilities=frozenset(
                {
                    RegistryCapability.ALIASES,
                    RegistryCapability.EXCLUSIVE_SERVING,
                    RegistryCapability.LOAD_MODEL,
                    RegistryCapability.PROMPTS,
                    RegistryCapability.INPUT_SCHEMA,
                }
            ),
        ),
    },
)
