"""mlstack's own alerts (a monitoring breach, an idle endpoint), sent where the stack file's
`alerts:` says (`stack/config/observability.py`).

- With `alertmanager:`, every firing alert is posted to its v2 API on each check that sees it
  (Alertmanager resolves an alert nobody re-posts), and a resolved one once with its end
  time: Alertmanager owns grouping, silences and de-duplication.
- Otherwise, with Apprise URLs (`notify:`, `notify_env:`), the first check that sees a breach
  notifies and records it in the spine (`alert_states`); later checks that see it again send
  nothing, and the first one that sees it resolved sends a resolved notice.

A notification that cannot be sent is returned as text, never raised: the check matters more
than the message."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stack.config.duration import format_duration
from stack.config.observability import AlertRouting
from stack.spine.alert_states import AlertStates
from stack.spine.timeutil import now_utc

if TYPE_CHECKING:
    from stack.monitoring.results import CheckResult
    from stack.session import StackSession


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: `name` (CamelCase, as Prometheus rules name theirs) and the `labels` that
    tell one breach from another; `summary` is a line, `description` the details."""

    name: str
    labels: Mapping[str, str]
    summary: str
    description: str = ""
    severity: str = "ticket"
    extra: Mapping[str, str] = field(default_factory=dict)  # more annotations

    @property
    def key(self) -> str:
        return json.dumps([self.name, sorted(self.labels.items())])


class AlertRouter:
    def __init__(self, routing: AlertRouting, states: AlertStates) -> None:
        self.routing = routing
        self.states = states

    def urls(self) -> list[str]:
        """The Apprise URLs: `notify:` and those in `$notify_env`."""
        urls = list(self.routing.notify)
        if self.routing.notify_env:
            urls += os.environ.get(self.routing.notify_env, "").split()
        return urls

    @property
    def configured(self) -> bool:
        return self.routing.alertmanager is not None or bool(self.urls())

    def fire(self, alert: Alert) -> str | None:
        """`alert` is firing; what went wrong sending it, if anything."""
        if self.routing.alertmanager is not None:
            self.states.open_alert(alert.key, alert.name, alert.labels)
            return self._post([_alertmanager_alert(alert, ends=None)])
        if not self.urls() or not self.states.open_alert(alert.key, alert.name, alert.labels):
            return None  # notified already, while it has not resolved
        error = self._notify(f"[FIRING] {alert.summary}", alert.description or alert.summary)
        if error is not None:  # not sent: the next check that sees the breach tries again
            self.states.close_alert(alert.key)
        return error

    def resolve(self, alert: Alert) -> str | None:
        """`alert` (the same name and labels as it fired with) no longer holds: a resolved
        notice, once, when it had fired."""
        if self.states.close_alert(alert.key) is None:
            return None
        if self.routing.alertmanager is not None:
            return self._post([_alertmanager_alert(alert, ends=now_utc())])
        return self._notify(f"[RESOLVED] {alert.summary}", f"Resolved: {alert.summary}")

    def test(self) -> list[str]:
        """Send a test notification on every route; one line per route, saying how it went."""
        alert = Alert(
            "MlstackTest",
            {"source": "mlstack alerts test"},
            "mlstack test alert: this route works",
            "Sent by `mlstack alerts test`; nothing is wrong.",
            severity="none",
        )
        lines = []
        if self.routing.alertmanager is not None:
            error = self._post([_alertmanager_alert(alert, ends=None)])
            lines.append(f"alertmanager {self.routing.alertmanager}: {error or 'accepted'}")
        for url in self.urls():
            error = self._notify(f"[TEST] {alert.summary}", alert.description, [url])
            lines.append(f"{_redacted(url)}: {error or 'sent'}")
        return lines

    def _post(self, alerts: list[dict[str, Any]]) -> str | None:
        url = f"{str(self.routing.alertmanager).rstrip('/')}/api/v2/alerts"
        request = urllib.request.Request(
            url,
            data=json.dumps(alerts).encode(),
            method="POST",
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.routing.timeout_seconds):
                return None
        except urllib.error.HTTPError as exc:
            return f"alertmanager {url} answered {exc.code}: {exc.read()[:300]!r}"
        except (urllib.error.URLError, OSError) as exc:
            return f"alertmanager {url} unreachable: {getattr(exc, 'reason', exc)}"

    def _notify(self, title: str, body: str, urls: list[str] | None = None) -> str | None:
        try:
            import apprise
        except ImportError:
            return "apprise is not installed: pip install 'mlstack[observability]'"
        targets = self.urls() if urls is None else urls
        notifier = apprise.Apprise()
        for url in targets:
            if not notifier.add(url):
                return f"{_redacted(url)}: not a URL Apprise can send to"
        if not notifier.notify(title=title, body=body):
            return f"apprise could not deliver to {', '.join(map(_redacted, targets))}"
        return None


def router_for(session: StackSession) -> AlertRouter:
    """The stack's router: its `alerts:` section, its spine."""
    return AlertRouter(session.stack.alerts, session.spine)


def breach_alert(check: CheckResult) -> Alert:
    """A monitoring check's alert: firing while its version breaches on its endpoint."""
    labels = {"model": check.model, "version": check.version, "endpoint": check.endpoint}
    return Alert(
        "MlstackMonitoringBreach",
        labels,
        f"{check.version} on {check.endpoint} breached its monitoring policy",
        "\n".join(check.breaches),
        extra={"check": str(check.id)},
    )


def idle_alert(endpoint: str, idle_after: timedelta) -> Alert:
    """An endpoint that answered no live request for `idle_after`."""
    return Alert(
        "MlstackEndpointIdle",
        {"endpoint": endpoint},
        f"{endpoint} answered no live request for {format_duration(idle_after)}",
        f"Retire it (`mlstack undeploy {endpoint}`) or scale it to zero; `mlstack cost` "
        "shows what it costs a day.",
    )


def _alertmanager_alert(alert: Alert, ends: datetime | None) -> dict[str, Any]:
    posted: dict[str, Any] = {
        "labels": {"alertname": alert.name, "severity": alert.severity, **alert.labels},
        "annotations": {"summary": alert.summary, "description": alert.description, **alert.extra},
        "generatorURL": "mlstack://alerts",
    }
    if ends is not None:
        posted["endsAt"] = ends.isoformat()
    return posted


def _redacted(url: str) -> str:
    """`url` as its scheme and host alone: the rest may hold tokens and passwords."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2].split(":", 1)[0]
    return f"{scheme}://{host}/…" if rest else url
