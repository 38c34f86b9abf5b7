"""The six roles a stack fills, each with exactly one adapter."""

from __future__ import annotations

from enum import StrEnum

from stack.contract.features import FeatureStore
from stack.contract.monitoring import Monitor
from stack.contract.orchestration import Orchestrator
from stack.contract.registry import Registry
from stack.contract.serving import Server
from stack.contract.tracking import Tracker


class Role(StrEnum):
    """Role names as they appear as keys of stack.yaml."""

    TRACKER = "tracker"
    REGISTRY = "registry"
    FEATURES = "features"
    ORCHESTRATOR = "orchestrator"
    SERVER = "server"
    MONITOR = "monitor"


ROLE_PROTOCOLS: dict[Role, type] = {
    Role.TRACKER: Tracker,
    Role.REGISTRY: Registry,
    Role.FEATURES: FeatureStore,
    Role.ORCHESTRATOR: Orchestrator,
    Role.SERVER: Server,
    Role.MONITOR: Monitor,
}
