"""The model inventory: every model with its owner, risk tier, state and monitoring status."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stack.contract.roles import Role
from stack.contract.states import LifecycleState
from stack.errors import StackError
from stack.governance.history import serving_histories
from stack.session import OWNER_TAG, RISK_TAG, StackSession

if TYPE_CHECKING:
    from stack.spine.records import LifecycleEvent


@dataclass(frozen=True, slots=True)
class InventoryRow:
    model: str
    owner: str
    risk_tier: str
    latest_version: int
    latest_state: str
    serving: str | None
    last_evaluation: dict[str, float] = field(default_factory=dict)
    last_drift_check: datetime | None = None
    open_alerts: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_drift_check"] = (
            self.last_drift_check.isoformat() if self.last_drift_check else None
        )
        return data


def inventory(session: StackSession) -> list[InventoryRow]:
    registry, spine = session.registry, session.spine
    models = registry.models()
    # Each read once for every model (a query per model each cost more than the reading).
    histories = serving_histories(spine, models)
    drift_alerts = _by_subject(spine.events(name="on_drift_detected"))
    checked: dict[str, datetime] = {}  # each model's newest monitoring check, any endpoint
    for check in spine.latest_checks():
        checked[check.model] = max(check.at, checked.get(check.model, check.at))
    rows: list[InventoryRow] = []
    for model in models:
        versions = registry.versions(model)
        if not versions:
            continue
        latest = versions[-1]
        serving = next((v for v in versions if v.state is LifecycleState.SERVING), None)
        evaluation: dict[str, float] = {}
        if latest.run_id and session.has(Role.TRACKER):
            try:
                evaluation = dict(session.tracker.get_run(latest.run_id).metrics)
            except StackError:
                evaluation = {}
        checks = drift_alerts.get(model, [])
        moments = [e.at for e in checks] + ([checked[model]] if model in checked else [])
        history = histories[model]
        since = history[-1].at if history else None
        rows.append(
            InventoryRow(
                model=model,
                owner=latest.tags.get(OWNER_TAG, "—"),
                risk_tier=latest.tags.get(RISK_TAG, "—"),
                latest_version=latest.version,
                latest_state=latest.state.value,
                serving=serving.ref if serving else None,
                last_evaluation=evaluation,
                last_drift_check=max(moments, default=None),
                open_alerts=sum(1 for e in checks if since is None or e.at >= since),
            )
        )
    return rows


def _by_subject(events: list[LifecycleEvent]) -> dict[str, list[LifecycleEvent]]:
    grouped: dict[str, list[LifecycleEvent]] = defaultdict(list)
    for event in events:
        grouped[event.subject].append(event)
    return grouped
