"""How a rollout ends when its challenger does not go on: rolled back (traffic to the
champion, the challenger rejected), undecided (evidence never came: the challenger back to
approved), or stopped because the endpoint died (EndpointDown naming what to run)."""

from __future__ import annotations

from typing import NoReturn

from stack.contract.registry import ModelVersion
from stack.contract.serving import Endpoint, HealthReport, TrafficSplit
from stack.contract.states import LifecycleState, can_transition
from stack.errors import EndpointDown, StackError
from stack.governance.service import Governance
from stack.lifecycle import Lifecycle
from stack.rollout.results import RolloutResult, health_json
from stack.rollout.traffic import EndpointTraffic
from stack.session import StackSession

S = LifecycleState


class RolloutEndings:
    """The ways a rollout stops short of promotion, each audited and told to the hooks."""

    def __init__(
        self, session: StackSession, governance: Governance, traffic: EndpointTraffic
    ) -> None:
        self.session = session
        self.governance = governance
        self.traffic = traffic

    def roll_back(
        self,
        name: str,
        champion: str,
        challenger: ModelVersion,
        reasons: list[str],
        report: HealthReport | None,
    ) -> RolloutResult:
        why = "; ".join(reasons)
        endpoint = self.to_champion(name, champion, challenger, why, reasons, report)
        self.audit("rollout.rolled_back", name, why, challenger, champion, reasons, report)
        return self.rejected(name, endpoint, challenger, champion, reasons)

    def rejected(
        self,
        name: str,
        endpoint: Endpoint,
        challenger: ModelVersion,
        champion: str | None,
        reasons: list[str],
    ) -> RolloutResult:
        """The challenger rolled back (its traffic gone, the rollback audited): rejected
        when it still can be, `on_rollback` fired."""
        why = "; ".join(reasons)
        fresh = self.governance.version(challenger)
        if can_transition(fresh.state, S.REJECTED):
            Lifecycle(self.session).transition(
                fresh.model, fresh.version, S.REJECTED, reason=f"rolled back: {why}"
            )
        self.session.emit(
            "on_rollback",
            subject=name,
            endpoint=name,
            from_version=challenger.ref,
            to_version=champion or "",
            reason=why,
        )
        return RolloutResult(endpoint, "rolled_back", challenger.ref, tuple(reasons))

    def audit(
        self,
        action: str,
        name: str,
        why: str,
        challenger: ModelVersion,
        champion: str | None,
        reasons: list[str],
        report: HealthReport | None,
    ) -> None:
        """How a rollout ended (`rollout.rolled_back`, `rollout.undecided`), with the numbers."""
        payload = {"from": challenger.ref, "to": champion, "reasons": reasons}
        self.traffic.audit(action, name, why, **payload, health=health_json(report))

    def undecided(
        self,
        name: str,
        champion: str | None,
        challenger: ModelVersion,
        reasons: list[str],
        report: HealthReport | None,
        endpoint: Endpoint | None = None,
    ) -> RolloutResult:
        """The evidence never came (see the plan's max_hold_seconds): traffic back to the
        champion (`endpoint`: where it stands when there is none), the challenger back to
        `approved` (neither judged good nor bad), `rollout.undecided` audited."""
        why = "undecided: " + "; ".join(reasons)
        if champion is not None:
            endpoint = self.to_champion(name, champion, challenger, why, reasons, report)
        assert endpoint is not None
        self.back_to_approved(challenger, why)
        self.audit("rollout.undecided", name, why, challenger, champion, reasons, report)
        return RolloutResult(endpoint, "undecided", challenger.ref, tuple(reasons))

    def to_champion(
        self,
        name: str,
        champion: str,
        challenger: ModelVersion,
        why: str,
        reasons: list[str],
        report: HealthReport | None,
    ) -> Endpoint:
        """All traffic to `champion`; an endpoint found dead on the way ends the rollout."""
        try:
            return self.traffic.route(name, TrafficSplit({champion: 1.0}), f"rollback: {why}")
        except StackError as exc:
            dead = self.traffic.dead(name)
            if dead is None:
                raise
            self.died(name, champion, challenger, [*reasons, dead], report, cause=exc)

    def died(
        self,
        name: str,
        champion: str | None,
        challenger: ModelVersion,
        reasons: list[str],
        report: HealthReport | None,
        cause: BaseException | None = None,
    ) -> NoReturn:
        """The endpoint stopped running mid-rollout: nothing can be routed or judged. The
        rollout ends truthfully (`rollout.undecided`, the challenger back to `approved`)
        and EndpointDown says what died and what to run."""
        why = "; ".join(reasons)
        self.back_to_approved(challenger, f"rollout stopped: {why}")
        down = f"endpoint down: {why}"
        self.audit("rollout.undecided", name, down, challenger, None, reasons, report)
        again = champion or challenger.ref
        raise EndpointDown(
            f"the rollout of {challenger.ref} on {name!r} stopped: {why}. {challenger.ref} is "
            f"back to approved. Run `mlstack undeploy {name}` to clear what is left, then "
            f"`mlstack deploy {again}` to serve it again"
        ) from cause

    def back_to_approved(self, version: ModelVersion, why: str) -> None:
        fresh = self.governance.version(version)
        if fresh.state in (S.CANARY, S.SHADOW) and can_transition(fresh.state, S.APPROVED):
            Lifecycle(self.session).transition(fresh.model, fresh.version, S.APPROVED, reason=why)
