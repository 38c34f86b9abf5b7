"""What this distribution provides, readable without importing Feast."""

from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="feast",
    package="mlstack-feast",
    description="Feature definitions, point-in-time training frames and online lookups on Feast.",
    roles={
        Role.FEATURES: RoleBinding(
            implementation="stack_feast.store:FeastFeatureStore",
            config="stack_feast.config:FeastConfig",
            capabilities=frozenset({"point_in_time", "online_features", "materialize", "plan"}),
        )
    },
)
