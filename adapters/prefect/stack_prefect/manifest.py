"""What this distribution provides, readable without importing Prefect."""

from stack.contract.capabilities import OrchestratorCapability
from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="prefect",
    package="mlstack-prefect",
    description="Runs a recipe as a Prefect flow (each step a task), locally or on a server.",
    roles={
        Role.ORCHESTRATOR: RoleBinding(
            implementation="stack_prefect.orchestrator:PrefectOrchestrator",
            config="stack_prefect.config:PrefectConfig",
            capabilities=frozenset(
                {
                    OrchestratorCapability.RESUME,
                    OrchestratorCapability.SCHEDULE,
                    OrchestratorCapability.PARALLEL_STEPS,
                    OrchestratorCapability.IN_PROCESS,
                }
            ),
        )
    },
)
