"""What this distribution provides, readable without importing ZenML."""

from stack.contract.capabilities import OrchestratorCapability
from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="zenml",
    package="mlstack-zenml",
    description="Runs a recipe as a ZenML pipeline on ZenML's active stack (local by default; "
    "its Kubernetes or Kubeflow orchestrators when configured there).",
    roles={
        Role.ORCHESTRATOR: RoleBinding(
            implementation="stack_zenml.orchestrator:ZenmlOrchestrator",
            config="stack_zenml.config:ZenmlConfig",
            capabilities=frozenset(
                {
                    OrchestratorCapability.RESUME,
                    OrchestratorCapability.SCHEDULE,
                    OrchestratorCapability.OUT_OF_PROCESS,
                }
            ),
        )
    },
)
