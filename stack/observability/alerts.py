"""mlstack's own alerts (a monitoring breach, a prediction log refusing rows, an idle
endpoint), sent where the stack file's `alerts:` says (`stack/config/observability.py`) and to
the recipe's `monitoring.alerts.webhook`, the one mechanism for all of them.

Every alert is recorded in the spine (`alert_states`) while it fires, with what each route
(every Apprise URL of `notify:`/`notify_env:` when no Alertmanager is named, every recipe
webhook) was last told of it (`alert_deliveries`): each check sends each route only what it
was not told yet, so a route hears FIRING once per breach and RESOLVED once when it ends,
however many checks see it; the alert leaves the spine once every route was told it resolved.
With `alertmanager:`, every firing alert is also posted to its v2 API on each check that sees
it (Alertmanager resolves an alert nobody re-posts), and a resolved one once with its end
time: Alertmanager owns grouping, silences and de-duplication there.

A notification that cannot be sent is returned as text naming the routes that failed, never
raised: the check matters more than the message; that route stays untold, so the next check
tells it (a missed FIRING on the next that sees the breach, a missed RESOLVED on the next
that sees it over). A route added while an alert fires is told on the next check that sees
it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stack.config.duration import format_duration
from stack.config.monitoring import AlertsSection
from stack.config.observability import AlertRouting
from stack.spine.alert_states import AlertStates
from stack.spine.timeutil import now_utc

if TYPE_CHECKING:
    from stack.monitoring.results import CheckResult
    from stack.session import StackSession

log = logging.getLogger("mlstack.alerts")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: `name` (CamelCase, as Prometheus rules name theirs) and the `labels` that
    tell one breach from another; `summary` is a line, `description` the details. `details`
    is the JSON a recipe's webhook receives besides (a check's record: `check`, `breaches`…)."""

    name: str
    labels: Mapping[str, str]
    summary: str
    description: str = ""
    severity: str = "ticket"
    extra: Mapping[str, str] = field(default_factory=dict)  # more annotations
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return json.dumps([self.name, sorted(self.labels.items())])


class AlertRouter:
    """The routes of one stack (its `alerts:`) and, for a recipe's checks, the recipe's
    webhooks (`monitoring.alerts`)."""

    def __init__(
        self,
        routing: AlertRouting,
        states: AlertStates,
        webhooks: Sequence[AlertsSection] = (),
    ) -> None:
        self.routing = routing
        self.states = states
        self.webhooks = tuple(w for w in webhooks if w.webhook is not None or w.webhook_env)

    def urls(self) -> list[str]:
        """The Apprise URLs: `notify:` and those in `$notify_env`."""
        urls = list(self.routing.notify)
        if self.routing.notify_env:
            urls += os.environ.get(self.routing.notify_env, "").split()
        return urls

    @property
    def configured(self) -> bool:
        return self.routing.alertmanager is not None or bool(self.urls()) or bool(self.webhooks)

    def fire(self, alert: Alert) -> str | None:
        """`alert` is firing: each route not yet told so hears FIRING (and Alertmanager
        gets it on every check); what went wrong sending it, naming the routes that failed."""
        if self.states.open_alert(alert.key, alert.name, alert.labels):
            log.warning("ALERT %s: %s", alert.summary, alert.description.replace("\n", "; "))
        errors: list[str | None] = []
        if self.routing.alertmanager is not None:
            error = self._post([_alertmanager_alert(alert, ends=None)])
            if error is None:
                self.states.claim(alert.key, *_ALERTMANAGER, "firing")
            errors.append(error)
        for route in self._routes():
            if self.states.claim(alert.key, route.id, route.name, "firing"):
                error = route.send("FIRING", alert, None)
                if error:  # not told: the next check that sees the breach tries again
                    self.states.unclaim(alert.key, route.id, None)
                errors.append(error)
        return _joined(errors)

    def resolve(self, alert: Alert, reason: str | None = None) -> str | None:
        """`alert` (the same name and labels as it fired with) no longer holds (`reason`
        says why, when not its check): each route told it fired hears RESOLVED, once; one
        that could not be told is tried again by the next check that resolves it, and the
        alert leaves the spine when every route was told."""
        marked = self.states.mark_resolved(alert.key)
        if marked is None:
            return None
        if marked[1]:
            log.warning("RESOLVED %s%s", alert.summary, f" ({reason})" if reason else "")
        told = self.states.told(alert.key)
        routes = list(self._routes())
        ids = [route.id for route in routes]
        errors: list[str | None] = []
        if self.routing.alertmanager is not None:
            ids.append(_ALERTMANAGER[0])
            if told.get(_ALERTMANAGER[0]) == "firing" and self.states.claim(
                alert.key, *_ALERTMANAGER, "resolved"
            ):
                error = self._post([_alertmanager_alert(alert, ends=now_utc())])
                if error:
                    self.states.unclaim(alert.key, _ALERTMANAGER[0], "firing")
                errors.append(error)
        for route in routes:
            if told.get(route.id) == "firing" and self.states.claim(
                alert.key, route.id, route.name, "resolved"
            ):
                error = route.send("RESOLVED", alert, reason)
                if error:
                    self.states.unclaim(alert.key, route.id, "firing")
                errors.append(error)
        self.states.settle(alert.key, ids)
        return _joined(errors)

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
        for hook in self.webhooks:
            error = _post_webhook(hook, "TEST", alert)
            lines.append(f"webhook {_hook_name(hook)}: {error or 'sent'}")
        return lines

    def _routes(self) -> list[_Route]:
        """Each route told once per breach: every Apprise URL (when no Alertmanager has the
        alerts) and every webhook."""
        routes = []
        if self.routing.alertmanager is None:
            for url in self.urls():
                routes.append(_Route(_digest("apprise", url), _redacted(url), self._apprise(url)))
        for hook in self.webhooks:
            named = str(hook.webhook) if hook.webhook is not None else f"${hook.webhook_env}"
            routes.append(
                _Route(_digest("webhook", named), f"webhook {_hook_name(hook)}", _hook(hook))
            )
        return routes

    def _apprise(self, url: str) -> _Send:
        def send(status: str, alert: Alert, reason: str | None) -> str | None:
            if status == "FIRING":
                body = alert.description or alert.summary
            else:
                body = f"Resolved: {alert.summary}" + (f" ({reason})" if reason else "")
            return self._notify(f"[{status}] {alert.summary}", body, [url])

        return send

    def _post(self, alerts: list[dict[str, Any]]) -> str | None:
        url = f"{str(self.routing.alertmanager).rstrip('/')}/api/v2/alerts"
        return _post_json(url, alerts, self.routing.timeout_seconds, "alertmanager")

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


_Send = Callable[[str, Alert, str | None], str | None]
_ALERTMANAGER = ("alertmanager", "alertmanager")  # its route id and name


@dataclass(frozen=True, slots=True)
class _Route:
    """One place alerts go: `id` (a digest: the URL may hold secrets) keys what it was told
    in the spine, `name` shows it; `send(status, alert, reason)` says what went wrong."""

    id: str
    name: str
    send: _Send


def _digest(kind: str, url: str) -> str:
    return f"{kind}:{hashlib.sha256(url.encode()).hexdigest()[:24]}"


def _hook(hook: AlertsSection) -> _Send:
    def send(status: str, alert: Alert, reason: str | None) -> str | None:
        return _post_webhook(hook, status, alert, reason)

    return send


def router_for(session: StackSession, recipe_alerts: AlertsSection | None = None) -> AlertRouter:
    """The stack's router (its `alerts:` section, its spine), with the webhook of a recipe's
    `monitoring.alerts` when one is given."""
    hooks = () if recipe_alerts is None else (recipe_alerts,)
    return AlertRouter(session.stack.alerts, session.spine, hooks)


def breach_alert(check: CheckResult) -> Alert:
    """A monitoring check's alert: firing while its version breaches on its endpoint."""
    labels = {"model": check.model, "version": check.version, "endpoint": check.endpoint}
    return Alert(
        "MlstackMonitoringBreach",
        labels,
        f"{check.version} on {check.endpoint} breached its monitoring policy",
        "\n".join(check.breaches),
        extra={"check": str(check.id)},
        details={"check": check.id, **check.as_record()},
    )


def log_outage_alert(model: str, endpoint: str, reasons: Sequence[str]) -> Alert:
    """An endpoint whose prediction log refuses rows (`reasons`, empty once it takes them):
    its checks' windows lack those rows until they are replayed."""
    return Alert(
        "MlstackPredictionLogDegraded",
        {"model": model, "endpoint": endpoint},
        f"{endpoint}'s prediction log refuses rows",
        "\n".join(reasons),
        details={
            "kind": "prediction_log",
            "model": model,
            "version": "-",
            "endpoint": endpoint,
            "breaches": list(reasons),
        },
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


def _post_webhook(
    hook: AlertsSection, status: str, alert: Alert, reason: str | None = None
) -> str | None:
    """POST `alert` as JSON to a recipe's webhook: its `details` (a check's record) at the
    top, as before routes existed, and `alert: {name, status, labels, summary, description}`."""
    url = str(hook.webhook) if hook.webhook is not None else None
    if url is None and hook.webhook_env:
        url = os.environ.get(hook.webhook_env) or None
        if url is None:
            return f"no webhook: ${hook.webhook_env} is not set"
    if url is None:
        return None
    body = {
        **alert.details,
        "alert": {
            "name": alert.name,
            "status": status.lower(),
            "labels": dict(alert.labels),
            "summary": alert.summary,
            "description": alert.description,
            **({"reason": reason} if reason else {}),
        },
    }
    return _post_json(url, body, hook.timeout_seconds, "webhook")


def _post_json(url: str, body: object, timeout: float, what: str) -> str | None:
    """POST `body` as JSON; what went wrong, if anything."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body, sort_keys=True, default=str).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            if answer.status >= 300:
                return f"{what} {url} answered {answer.status}"
            return None
    except urllib.error.HTTPError as exc:
        return f"{what} {url} answered {exc.code}: {exc.read()[:300]!r}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{what} {url} unreachable: {getattr(exc, 'reason', exc)}"


def _hook_name(hook: AlertsSection) -> str:
    if hook.webhook is not None:
        return _redacted(str(hook.webhook))
    return f"${hook.webhook_env}"


def _joined(errors: Sequence[str | None]) -> str | None:
    return "; ".join(error for error in errors if error) or None
