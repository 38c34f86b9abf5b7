"""What this distribution provides, readable without importing KFP."""

from stack.contract.capabilities import OrchestratorCapability
from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="kfp",
    package="mlstack-kfp",
    description="Compiles a recipe to a Kubeflow pipeline (IR YAML); runs it with kfp.local "
    "or on a KFP endpoint.",
    roles={
        Role.ORCHESTRATOR: RoleBinding(
            implementation="stack_kfp.orchestrator:KfpOrchestrator",
            config="stack_kfp.config:KfpConfig",
            capabilities=frozenset(
                {
                    OrchestratorCapability.COMPILE,
                    OrchestratorCapability.RESUME,
                    OrchestratorCapability.SCHEDULE,
                    OrchestratorCapability.OUT_OF_PROCESS,
                }
            ),
        )
    },
)
