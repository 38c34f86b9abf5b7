"""What this distribution provides, readable without importing BentoML."""

from stack.contract.capabilities import ServerCapability
from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="bentoml",
    package="mlstack-bentoml",
    description="Serve registry versions with BentoML: canary, shadow, A/B, prediction log.",
    roles={
        Role.SERVER: RoleBinding(
            implementation="stack_bentoml.server:BentoServer",
            config="stack_bentoml.config:BentoConfig",
            capabilities=frozenset(
                {
                    ServerCapability.CANARY,
                    ServerCapability.SHADOW,
                    ServerCapability.AB,
                    ServerCapability.PREDICTION_LOG,
                    ServerCapability.KUBERNETES,
                    ServerCapability.PROCESSES,
                    ServerCapability.PACKAGE,
                    ServerCapability.PROBE,
                }
            ),
        )
    },
)
