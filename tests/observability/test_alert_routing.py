"""mlstack's own alerts: by email through a local SMTP server (aiosmtpd) once per breach and a
resolved notice, `mlstack alerts test` on every route, and posted to Debian's Alertmanager
when the stack names one."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.errors import StackConfigError
from stack.monitoring.results import CheckResult
from stack.observability.alerts import breach_alert, router_for
from stack.session import StackSession
from tests.support.cli import cli_in
from tests.support.ports import free_port
from tests.support.prometheus import alertmanager, wait_for, webhook_receiver

WINDOW = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))


@dataclass
class Mailbox:
    port: int
    messages: list[email.message.EmailMessage]

    def subjects(self) -> list[str]:
        return [str(m["subject"]) for m in self.messages]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox(free_port(), [])

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            box.messages.append(parsed)  # type: ignore[arg-type]
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def _stack(folder: Path, alerts: str) -> Path:
    (folder / "stack.yaml").write_text(
        f"name: alerts-test\nhome: .mlstack\nalerts: {alerts}\n"
        'spine: {url: "sqlite:///.mlstack/spine.db"}\n'
    )
    return folder / "stack.yaml"


def _mail_to(box: Mailbox) -> str:
    return f"mailto://127.0.0.1:{box.port}?from=mlstack@example.com&to=oncall@example.com"


def _check(status: str) -> CheckResult:
    breaches = ["tenure drifted (psi 0.42 > 0.2)"] if status == "breach" else []
    return CheckResult("churn", "churn@2", "churn", WINDOW, 400, status, breaches=breaches)


def test_a_breach_is_mailed_once_until_it_resolves(tmp_path: Path, mailbox: Mailbox) -> None:
    path = _stack(tmp_path, f'{{notify: ["{_mail_to(mailbox)}"]}}')
    with StackSession.open(path, base_dir=tmp_path) as session:
        router = router_for(session)
        for _ in range(3):  # three checks see the same breach
            assert router.fire(breach_alert(_check("breach"))) is None
        assert [alert.name for alert in session.spine.firing_alerts()] == [
            "MlstackMonitoringBreach"
        ]
        assert router.resolve(breach_alert(_check("ok"))) is None
        assert router.resolve(breach_alert(_check("ok"))) is None  # resolved once
        assert session.spine.firing_alerts() == []
        router.fire(breach_alert(_check("breach")))  # a new breach: a new notification
    assert mailbox.subjects() == [
        "[FIRING] churn@2 on churn breached its monitoring policy",
        "[RESOLVED] churn@2 on churn breached its monitoring policy",
        "[FIRING] churn@2 on churn breached its monitoring policy",
    ]
    first = mailbox.messages[0]
    assert first["to"] == "oncall@example.com"
    body = first.get_body(("plain",))
    assert body is not None and "tenure drifted (psi 0.42 > 0.2)" in body.get_content()


def test_an_undelivered_notification_is_tried_again_by_the_next_check(tmp_path: Path) -> None:
    unreachable = f"mailto://127.0.0.1:{free_port()}?from=a@example.com&to=b@example.com"
    path = _stack(tmp_path, f'{{notify: ["{unreachable}"], timeout_seconds: 2}}')
    with StackSession.open(path, base_dir=tmp_path) as session:
        router = router_for(session)
        error = router.fire(breach_alert(_check("breach")))
        assert error is not None and "could not deliver to mailto://127.0.0.1" in error
        [alert] = session.spine.firing_alerts()
        assert alert.told == {}  # no route told: the next check tries again


def test_alerts_test_sends_on_every_route_and_fails_on_a_dead_one(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    with webhook_receiver() as receiver:
        hook = receiver.url.replace("http://", "json://")
        _stack(tmp_path, f'{{notify: ["{_mail_to(mailbox)}", "{hook}"]}}')
        sent = cli_in(tmp_path)("alerts", "test")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.splitlines() == [
            "mailto://127.0.0.1/…: sent",
            "json://127.0.0.1/…: sent",
        ]
        assert mailbox.subjects() == ["[TEST] mlstack test alert: this route works"]
        assert receiver.bodies[0]["title"] == "[TEST] mlstack test alert: this route works"

    dead = f"json://127.0.0.1:{free_port()}/alerts"
    _stack(tmp_path, f'{{notify: ["{dead}"], timeout_seconds: 2}}')
    failed = cli_in(tmp_path)("alerts", "test")
    assert failed.returncode == 1
    assert "json://127.0.0.1/…: apprise could not deliver" in failed.stdout


def test_alerts_test_without_a_route_says_where_to_name_one(tmp_path: Path) -> None:
    _stack(tmp_path, "{}")
    done = cli_in(tmp_path)("alerts", "test")
    assert done.returncode == 1
    assert "no alert route: name one in stack.yaml under `alerts:`" in done.stderr


def test_a_bad_notify_url_names_the_field(tmp_path: Path) -> None:
    path = _stack(tmp_path, '{notify: ["oncall@example.com"]}')
    with pytest.raises(StackConfigError) as caught:
        StackSession.open(path, base_dir=tmp_path)
    assert "alerts.notify" in str(caught.value)
    assert "is not an Apprise URL" in str(caught.value)


def test_with_alertmanager_alerts_are_posted_to_it_and_resolved(tmp_path: Path) -> None:
    with (
        webhook_receiver() as receiver,
        alertmanager(tmp_path / "am", receiver.url) as manager,
    ):
        path = _stack(tmp_path, f"{{alertmanager: {manager.url}}}")
        with StackSession.open(path, base_dir=tmp_path) as session:
            router = router_for(session)
            assert router.fire(breach_alert(_check("breach"))) is None

            def posted() -> list[dict[str, Any]]:
                return list(httpx.get(f"{manager.url}/api/v2/alerts", timeout=5).json())

            [alert] = wait_for("the alert in Alertmanager", posted, 30, manager.log)
            assert alert["labels"] == {
                "alertname": "MlstackMonitoringBreach",
                "severity": "ticket",
                "model": "churn",
                "version": "churn@2",
                "endpoint": "churn",
            }
            assert alert["status"]["state"] == "active"
            firing = wait_for("the alert at the webhook", lambda: receiver.bodies, 30, manager.log)
            assert firing[0]["alerts"][0]["status"] == "firing"

            assert router.resolve(breach_alert(_check("ok"))) is None

            def resolved() -> bool:
                return any(body["status"] == "resolved" for body in receiver.bodies)

            wait_for("the resolved notice at the webhook", resolved, 30, manager.log)


def test_monitoring_checks_fire_and_resolve_through_the_stacks_route(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    from stack.config.monitoring import MonitoringSection
    from stack.monitoring.recording import CheckRecorder

    path = _stack(tmp_path, f'{{notify: ["{_mail_to(mailbox)}"]}}')
    with StackSession.open(path, base_dir=tmp_path) as session:
        recorder = CheckRecorder(session)
        for status in ("breach", "breach", "empty", "ok", "ok"):
            check = _check(status)
            recorder.record(check, MonitoringSection())
            assert check.alert_error is None
    assert [subject.split("]")[0] for subject in mailbox.subjects()] == ["[FIRING", "[RESOLVED"]


def test_a_recipes_webhook_is_a_route_notified_once_per_breach(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """The recipe's `monitoring.alerts.webhook` beside the stack's route: both hear of a
    breach once, however many checks see it, then once of its end."""
    from stack.config.monitoring import MonitoringSection
    from stack.monitoring.recording import CheckRecorder

    path = _stack(tmp_path, f'{{notify: ["{_mail_to(mailbox)}"]}}')
    with webhook_receiver() as receiver, StackSession.open(path, base_dir=tmp_path) as session:
        section = MonitoringSection.model_validate({"alerts": {"webhook": receiver.url}})
        recorder = CheckRecorder(session)
        checks = [_check(status) for status in ("breach",) * 13 + ("ok", "ok")]
        for check in checks:
            recorder.record(check, section)
            assert check.alert_error is None
        first, resolved = receiver.bodies
    assert first["alert"]["status"] == "firing"
    assert first["alert"]["name"] == "MlstackMonitoringBreach"
    assert first["check"] == checks[0].id  # the check's record, as the webhook always had
    assert first["breaches"] == ["tenure drifted (psi 0.42 > 0.2)"]
    assert resolved["alert"]["status"] == "resolved"
    assert resolved["check"] == checks[13].id and resolved["status"] == "ok"
    assert [subject.split("]")[0] for subject in mailbox.subjects()] == ["[FIRING", "[RESOLVED"]


def test_a_recipes_webhook_that_is_down_is_said_and_tried_again(tmp_path: Path) -> None:
    from stack.config.monitoring import AlertsSection, MonitoringSection
    from stack.monitoring.recording import CheckRecorder

    dead = f"http://127.0.0.1:{free_port()}/alerts"
    path = _stack(tmp_path, "{}")
    section = MonitoringSection(alerts=AlertsSection.model_validate({"webhook": dead}))
    with webhook_receiver() as receiver, StackSession.open(path, base_dir=tmp_path) as session:
        recorder = CheckRecorder(session)
        down = _check("breach")
        recorder.record(down, section)
        assert down.alert_error is not None
        assert f"webhook {dead} unreachable" in down.alert_error
        [alert] = session.spine.firing_alerts()
        assert alert.told == {}  # not notified: the next check tries
        up = MonitoringSection(alerts=AlertsSection.model_validate({"webhook": receiver.url}))
        recorder.record(_check("breach"), up)
        assert [body["alert"]["status"] for body in receiver.bodies] == ["firing"]


def test_alerts_test_with_a_recipe_sends_on_its_webhook_too(tmp_path: Path) -> None:
    with webhook_receiver() as receiver:
        _stack(tmp_path, "{}")
        recipe = tmp_path / "recipe"
        recipe.mkdir()
        (recipe / "recipe.yaml").write_text(
            "name: r\nmodel: {name: churn}\n"
            f"monitoring: {{alerts: {{webhook: {receiver.url}}}}}\n"
            "steps: [{name: train, run: steps:train}]\n"
        )
        (recipe / "steps.py").write_text("def train(ctx):\n    pass\n")
        sent = cli_in(tmp_path)("alerts", "test", "--recipe", str(recipe))
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.splitlines() == ["webhook http://127.0.0.1/…: sent"]
        [body] = receiver.bodies
        assert body["alert"]["status"] == "test" and body["alert"]["name"] == "MlstackTest"


def _hooked(url: str) -> Any:
    """A recipe's monitoring section whose webhook is read from $ALERT_HOOK (`url`)."""
    import os

    from stack.config.monitoring import MonitoringSection

    os.environ["ALERT_HOOK"] = url
    return MonitoringSection.model_validate({"alerts": {"webhook_env": "ALERT_HOOK"}})


@pytest.fixture
def hook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_HOOK", "")


def test_an_undelivered_resolved_notice_is_tried_again_by_the_next_check(
    tmp_path: Path, mailbox: Mailbox, hook_env: None
) -> None:
    """The webhook is down when the breach ends: the mail route hears RESOLVED once, the
    alert stays listed until the webhook is told too, by the next ok check."""
    from stack.monitoring.recording import CheckRecorder

    dead = f"http://127.0.0.1:{free_port()}/alerts"
    path = _stack(tmp_path, f'{{notify: ["{_mail_to(mailbox)}"], timeout_seconds: 2}}')
    with webhook_receiver() as receiver, StackSession.open(path, base_dir=tmp_path) as session:
        recorder = CheckRecorder(session)
        recorder.record(_check("breach"), _hooked(receiver.url))
        down = _check("ok")
        recorder.record(down, _hooked(dead))
        assert down.alert_error is not None and f"webhook {dead} unreachable" in down.alert_error
        assert "mailto" not in down.alert_error  # the mail route was told
        [pending] = session.spine.firing_alerts()
        assert pending.resolved is not None
        assert pending.told["webhook $ALERT_HOOK"] == "firing"
        [listed] = cli_in(tmp_path)("alerts", "firing").stdout.splitlines()
        assert "MlstackMonitoringBreach" in listed
        assert listed.endswith("not yet told: webhook $ALERT_HOOK")
        up = _check("ok")
        recorder.record(up, _hooked(receiver.url))
        assert up.alert_error is None
        recorder.record(_check("ok"), _hooked(receiver.url))
        assert session.spine.firing_alerts() == []
        statuses = [body["alert"]["status"] for body in receiver.bodies]
    assert statuses == ["firing", "resolved"]
    assert [subject.split("]")[0] for subject in mailbox.subjects()] == ["[FIRING", "[RESOLVED"]


def test_a_retry_tells_only_the_route_that_missed_the_notice(
    tmp_path: Path, mailbox: Mailbox, hook_env: None
) -> None:
    """The webhook is down when the breach starts: the mail goes once, the error names the
    webhook alone, and the next check tells the webhook without mailing again."""
    from stack.monitoring.recording import CheckRecorder

    dead = f"http://127.0.0.1:{free_port()}/alerts"
    path = _stack(tmp_path, f'{{notify: ["{_mail_to(mailbox)}"], timeout_seconds: 2}}')
    with webhook_receiver() as receiver, StackSession.open(path, base_dir=tmp_path) as session:
        recorder = CheckRecorder(session)
        down = _check("breach")
        recorder.record(down, _hooked(dead))
        assert down.alert_error is not None
        assert down.alert_error.startswith(f"webhook {dead} unreachable")
        assert "mailto" not in down.alert_error  # the mail route was told
        for _ in range(2):
            again = _check("breach")
            recorder.record(again, _hooked(receiver.url))
            assert again.alert_error is None
        statuses = [body["alert"]["status"] for body in receiver.bodies]
    assert statuses == ["firing"]
    assert [subject.split("]")[0] for subject in mailbox.subjects()] == ["[FIRING"]


def test_a_route_added_while_a_breach_fires_is_told_it_fires_then_resolved(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    from stack.config.monitoring import MonitoringSection
    from stack.monitoring.recording import CheckRecorder

    path = _stack(tmp_path, f'{{notify: ["{_mail_to(mailbox)}"]}}')
    with webhook_receiver() as receiver, StackSession.open(path, base_dir=tmp_path) as session:
        recorder = CheckRecorder(session)
        recorder.record(_check("breach"), MonitoringSection())  # before the webhook existed
        hooked = MonitoringSection.model_validate({"alerts": {"webhook": receiver.url}})
        for status in ("breach", "breach", "ok", "ok"):
            recorder.record(_check(status), hooked)
        statuses = [body["alert"]["status"] for body in receiver.bodies]
    assert statuses == ["firing", "resolved"]
    assert [subject.split("]")[0] for subject in mailbox.subjects()] == ["[FIRING", "[RESOLVED"]


def test_a_breach_of_a_version_no_longer_served_resolves_saying_so(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """churn@1 breached, then a retrain promoted churn@2: the next check of churn, which
    serves only churn@2, resolves churn@1's alert with a notice saying why."""
    from stack.config.monitoring import MonitoringSection
    from stack.monitoring.recording import CheckRecorder

    old = CheckResult("churn", "churn@1", "churn", WINDOW, 400, "breach", breaches=["x"])
    path = _stack(tmp_path, f'{{notify: ["{_mail_to(mailbox)}"]}}')
    with webhook_receiver() as receiver, StackSession.open(path, base_dir=tmp_path) as session:
        hooked = MonitoringSection.model_validate({"alerts": {"webhook": receiver.url}})
        recorder = CheckRecorder(session)
        recorder.record(old, hooked)
        recorder.record(_check("breach"), hooked)  # churn@2 breaches too: it stays firing
        recorder.resolve_unserved("churn", "churn", {"churn@2"}, hooked)
        [firing] = session.spine.firing_alerts()
        assert firing.labels["version"] == "churn@2"
        resolved = receiver.bodies[-1]
    assert resolved["alert"]["status"] == "resolved"
    assert resolved["alert"]["labels"]["version"] == "churn@1"
    assert resolved["alert"]["reason"] == "churn@1 is no longer served on churn"
    last = mailbox.messages[-1]
    assert str(last["subject"]) == "[RESOLVED] churn@1 on churn breached its monitoring policy"
    body = last.get_body(("plain",))
    assert body is not None and "churn@1 is no longer served on churn" in body.get_content()
