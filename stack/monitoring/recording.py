"""A check's result kept: stored in the spine, linked to its version in lineage, and on a
breach alerted once until it resolves (the stack's routes and the recipe's webhook,
stack/observability/alerts.py), audited and told to the hooks (`on_drift_detected`)."""

from __future__ import annotations

from typing import cast

from stack.config.monitoring import MonitoringSection
from stack.contract.capabilities import ServerCapability
from stack.contract.serving import ProcessInspector
from stack.errors import StackError
from stack.identity import current_actor
from stack.monitoring.results import CheckResult
from stack.plugins.capabilities import declares
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef


class CheckRecorder:
    """Records the checks of one session."""

    def __init__(self, session: StackSession) -> None:
        self.session = session

    def record(self, result: CheckResult, section: MonitoringSection) -> None:
        spine = self.session.spine
        result.id = spine.record_check(
            model=result.model,
            version=result.version,
            endpoint=result.endpoint,
            window=result.window,
            status=result.status,
            result=result.as_record(),
            report_uri=result.report_uri,
        )
        if result.version != "-":
            report = NodeRef(NodeKind.REPORT, f"monitoring/{result.id}")
            spine.link(
                NodeRef(NodeKind.MODEL_VERSION, result.version),
                report,
                "monitored_by",
                attributes={
                    report: {
                        "status": result.status,
                        "endpoint": result.endpoint,
                        "window_end": result.window[1].isoformat(),
                        "report": result.report_uri,
                    }
                },
            )
        routed = self._routed(result, section)
        if routed:
            result.alert_error = "; ".join(e for e in (result.alert_error, routed) if e)
        if result.status != "breach":
            return
        spine.audit(
            actor=current_actor(),
            action="monitoring.breached",
            subject=result.version,
            reason="; ".join(result.breaches),
            payload={"check": result.id, "endpoint": result.endpoint},
        )
        self.session.emit(
            "on_drift_detected", subject=result.model, model=result.model, report=result.drift
        )

    def _routed(self, result: CheckResult, section: MonitoringSection) -> str | None:
        """The stack's alert routing (`alerts:` in stack.yaml) and the recipe's webhook: a
        breach fires, an ok check resolves; once per breach (stack/observability/alerts.py)."""
        from stack.observability.alerts import breach_alert, router_for

        if result.version == "-":
            return None
        router = router_for(self.session, section.alerts)
        if result.status == "breach":
            return router.fire(breach_alert(result))
        if result.status == "ok":
            return router.resolve(breach_alert(result))
        return None

    def resolve_unserved(
        self, model: str, endpoint: str, served: set[str], section: MonitoringSection
    ) -> None:
        """A breach alert of `model` on `endpoint` for a version no longer served there
        (`served`: the versions it routes now), resolved with a notice saying so: no check
        will see that version again to resolve it."""
        from stack.observability.alerts import Alert, router_for

        router = router_for(self.session, section.alerts)
        for firing in self.session.spine.firing_alerts():
            labels = firing.labels
            if firing.name != "MlstackMonitoringBreach" or labels.get("model") != model:
                continue
            if labels.get("endpoint") != endpoint or labels.get("version") in served:
                continue
            version = labels.get("version", "-")
            stale = Alert(
                firing.name,
                labels,
                f"{version} on {endpoint} breached its monitoring policy",
                details={
                    "kind": "monitoring",
                    "model": model,
                    "version": version,
                    "endpoint": endpoint,
                },
            )
            router.resolve(stale, f"{version} is no longer served on {endpoint}")

    def alert_log_outage(
        self, model: str, endpoint: str, section: MonitoringSection, checks: list[CheckResult]
    ) -> None:
        """The endpoint's prediction log refusing rows (they wait to be replayed, so the
        window lacks them): said in each check and alerted once until it takes rows again
        (then resolved), not a breach."""
        from stack.observability.alerts import log_outage_alert, router_for

        degraded = self._degraded(endpoint)
        router = router_for(self.session, section.alerts)
        alert = log_outage_alert(model, endpoint, degraded)
        if not degraded:
            router.resolve(alert)
            return
        for result in checks:
            result.messages.extend(
                f"{reason} (this window lacks those rows until they are replayed)"
                for reason in degraded
            )
        error = router.fire(alert)
        for result in checks:
            result.alert_error = error

    def _degraded(self, endpoint: str) -> list[str]:
        """Why the endpoint answers but is not whole, when its server can tell."""
        if not declares(self.session, ServerCapability.PROCESSES):
            return []
        server = cast(ProcessInspector, self.session.server)  # the registry checked it
        try:
            return [reason for found in server.processes(endpoint) for reason in found.degraded]
        except StackError:  # no such endpoint here (a batch name, a remote server)
            return []
