"""Alerts that are firing: the row is written when the first notification goes out and
deleted when the alert resolves, so that every process (a CronJob per check) notifies once
per breach, however many checks see it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stack.spine.schema import AlertStateRow
from stack.spine.tables import SpineTables
from stack.spine.timeutil import from_text, now_utc, to_text


@dataclass(frozen=True, slots=True)
class FiringAlert:
    key: str
    name: str
    labels: Mapping[str, str]
    since: datetime


class AlertStates(SpineTables):
    def open_alert(self, key: str, name: str, labels: Mapping[str, str]) -> bool:
        """Mark `key` firing; True when it was not already (so: notify now). Two processes
        opening the same key at once: one gets True."""
        row = AlertStateRow(
            key=key, name=name, labels=json.dumps(dict(labels)), since=to_text(now_utc())
        )
        try:
            with self._transaction() as session:
                if session.get(AlertStateRow, key) is not None:
                    return False
                session.add(row)
        except IntegrityError:  # another process opened it between the read and the write
            return False
        return True

    def close_alert(self, key: str) -> FiringAlert | None:
        """`key` resolved: its state, when it was firing (so: send the resolved notice)."""
        with self._transaction() as session:
            row = session.get(AlertStateRow, key)
            if row is None:
                return None
            found = _firing(row)
            deleted = session.execute(delete(AlertStateRow).where(AlertStateRow.key == key))
            # another process closed it first: it sends the notice
            return found if getattr(deleted, "rowcount", 1) else None

    def firing_alerts(self) -> list[FiringAlert]:
        """Every alert firing, oldest first."""
        with Session(self._reads) as session:
            rows = session.execute(select(AlertStateRow).order_by(AlertStateRow.since)).scalars()
            return [_firing(row) for row in rows]


def _firing(row: AlertStateRow) -> FiringAlert:
    return FiringAlert(row.key, row.name, json.loads(row.labels), from_text(row.since))
