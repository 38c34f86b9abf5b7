"""What this distribution provides, readable without importing Evidently."""

from stack.contract.capabilities import MonitorCapability
from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="evidently",
    package="mlstack-evidently",
    description="Drift, data quality and performance on Evidently 0.7, with its HTML reports.",
    roles={
        Role.MONITOR: RoleBinding(
            implementation="stack_evidently.monitor:EvidentlyMonitor",
            config="stack_evidently.config:EvidentlyConfig",
            capabilities=frozenset(
                {
                    MonitorCapability.HTML_REPORT,
                    MonitorCapability.PREDICTION_DRIFT,
                    MonitorCapability.PERFORMANCE,
                    MonitorCapability.DATA_QUALITY,
                }
            ),
        )
    },
)
