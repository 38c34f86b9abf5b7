"""What this distribution provides, readable without importing MLflow."""

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
                    "artifacts",
                    "datasets",
                    "models",
                    "code_version",
                    "buffered_metrics",
                    "replay",
                    "tracing",
                }
            ),
        ),
        Role.REGISTRY: RoleBinding(
            implementation="stack_mlflow.registry:MlflowRegistry",
            config="stack_mlflow.config:MlflowRegistryConfig",
            capabilities=frozenset({"aliases", "exclusive_serving", "load_model", "prompts"}),
        ),
    },
)
