"""What this distribution provides, readable without importing BentoML."""

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
            capabilities=frozenset({"canary", "shadow", "ab", "prediction_log", "kubernetes"}),
        )
    },
)
