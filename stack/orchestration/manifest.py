"""The core's own adapter, registered through the entry point like any other."""

from stack.contract.capabilities import OrchestratorCapability
from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="local",
    package="mlstack",
    description="Runs a recipe's steps in-process, in dependency order, with resume.",
    roles={
        Role.ORCHESTRATOR: RoleBinding(
            implementation="stack.orchestration.local:LocalOrchestrator",
            config="stack.orchestration.local_config:LocalOrchestratorConfig",
            capabilities=frozenset(
                {OrchestratorCapability.RESUME, OrchestratorCapability.IN_PROCESS}
            ),
        )
    },
)
