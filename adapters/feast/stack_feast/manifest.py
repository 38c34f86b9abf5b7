"""What this distribution provides, readable without importing Feast."""

from stack.contract.capabilities import FeaturesCapability
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
            capabilities=frozenset(
                {
                    FeaturesCapability.POINT_IN_TIME,
                    FeaturesCapability.ONLINE_FEATURES,
                    FeaturesCapability.MATERIALIZE,
                    FeaturesCapability.PLAN,
                    FeaturesCapability.READ_REPO,
                }
            ),
        )
    },
)
