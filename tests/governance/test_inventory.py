"""The model inventory (`mlstack models`): each model's last monitoring check is what the
spine recorded, with or without a drift alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stack.governance.inventory import inventory
from stack.session import StackSession
from tests.governance.conftest import Factory


def test_a_model_checked_without_drift_shows_its_last_check(
    session: StackSession, make_version: Factory, model: str
) -> None:
    version = make_version(0.8)
    [row] = [r for r in inventory(session) if r.model == model]
    assert row.last_drift_check is None  # never checked: "never"
    now = datetime.now(UTC)
    for endpoint in ("churn", "churn-eu"):
        session.spine.record_check(
            model=model,
            version=version.ref,
            endpoint=endpoint,
            window=(now - timedelta(hours=1), now),
            status="ok",
            result={},
        )
    [row] = [r for r in inventory(session) if r.model == model]
    [newest] = session.spine.checks(model, limit=1)
    assert row.last_drift_check == newest.at
    assert row.open_alerts == 0
