"""Alerts that are firing, and what each route was told of them: the alert's row is written
when a check first sees it firing and deleted once every route was told it resolved; a
delivery row per (alert, route) says what that route last heard (`firing`, `resolved`), so
that every process (a CronJob per check) tells each route once per breach, however many
checks see it, and a route that missed a notice hears it on the next check."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stack.spine.schema import AlertDeliveryRow, AlertStateRow
from stack.spine.tables import SpineTables
from stack.spine.timeutil import from_text, now_utc, to_text


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """An alert in the spine: `resolved` is when a check saw it end (None while it fires);
    `told` maps each route's name (its URL without secrets) to what it last heard."""

    key: str
    name: str
    labels: Mapping[str, str]
    since: datetime
    resolved: datetime | None = None
    told: Mapping[str, str] = field(default_factory=dict)


class AlertStates(SpineTables):
    def open_alert(self, key: str, name: str, labels: Mapping[str, str]) -> bool:
        """Mark `key` firing; True when it was not already (a new breach, or one that fires
        again before every route heard it resolved). Two processes at once: one gets True."""
        row = AlertStateRow(
            key=key, name=name, labels=json.dumps(dict(labels)), since=to_text(now_utc())
        )
        try:
            with self._transaction() as session:
                found = session.get(AlertStateRow, key)
                if found is not None:
                    if found.resolved is None:
                        return False
                    found.resolved = None
                    return True
                session.add(row)
        except IntegrityError:  # another process opened it between the read and the write
            return False
        return True

    def mark_resolved(self, key: str) -> tuple[FiringAlert, bool] | None:
        """A check saw `key` resolved: its state (None when it is not in the spine) and
        whether this is the first check to see it so."""
        with self._transaction() as session:
            row = session.get(AlertStateRow, key)
            if row is None:
                return None
            first = row.resolved is None
            if first:
                row.resolved = to_text(now_utc())
            return _firing(row, {}), first

    def told(self, key: str) -> dict[str, str]:
        """What each route (by its id) was last told of `key`: `firing` or `resolved`."""
        with Session(self._reads) as session:
            rows = session.execute(select(AlertDeliveryRow).where(AlertDeliveryRow.key == key))
            return {row.route: row.told for row in rows.scalars()}

    def claim(self, key: str, route: str, route_name: str, told: str) -> bool:
        """Record that `route` is being told `told` of `key`; True when it had not been
        (so: send now). Of two processes claiming at once, one gets True."""
        at = to_text(now_utc())
        try:
            with self._transaction() as session:
                changed = session.execute(
                    update(AlertDeliveryRow)
                    .where(AlertDeliveryRow.key == key, AlertDeliveryRow.route == route)
                    .where(AlertDeliveryRow.told != told)
                    .values(told=told, at=at, route_name=route_name)
                )
                if getattr(changed, "rowcount", 0):
                    return True
                if session.get(AlertDeliveryRow, (key, route)) is not None:
                    return False
                session.add(
                    AlertDeliveryRow(key=key, route=route, route_name=route_name, told=told, at=at)
                )
        except IntegrityError:  # another process claimed it between the read and the write
            return False
        return True

    def unclaim(self, key: str, route: str, back_to: str | None) -> None:
        """The notice did not go out: `route` was last told `back_to` (None: nothing)."""
        with self._transaction() as session:
            row = session.get(AlertDeliveryRow, (key, route))
            if row is None:
                return
            if back_to is None:
                session.delete(row)
            else:
                row.told = back_to

    def settle(self, key: str, routes: Collection[str]) -> bool:
        """After a resolved check: forget routes no longer configured (they cannot be told),
        and drop `key` when no route of `routes` is left thinking it fires; True if dropped."""
        with self._transaction() as session:
            rows = session.execute(select(AlertDeliveryRow).where(AlertDeliveryRow.key == key))
            firing = False
            for row in rows.scalars():
                if row.route not in routes:
                    session.delete(row)
                elif row.told == "firing":
                    firing = True
            if firing:
                return False
            session.execute(delete(AlertDeliveryRow).where(AlertDeliveryRow.key == key))
            session.execute(delete(AlertStateRow).where(AlertStateRow.key == key))
            return True

    def firing_alerts(self) -> list[FiringAlert]:
        """Every alert in the spine (firing, or resolved with a route not told yet), oldest
        first."""
        with Session(self._reads) as session:
            rows = session.execute(select(AlertStateRow).order_by(AlertStateRow.since)).scalars()
            deliveries: dict[str, dict[str, str]] = {}
            for delivery in session.execute(select(AlertDeliveryRow)).scalars():
                deliveries.setdefault(delivery.key, {})[delivery.route_name] = delivery.told
            return [_firing(row, deliveries.get(row.key, {})) for row in rows]


def _firing(row: AlertStateRow, told: Mapping[str, str]) -> FiringAlert:
    resolved = from_text(row.resolved) if row.resolved is not None else None
    return FiringAlert(
        row.key, row.name, json.loads(row.labels), from_text(row.since), resolved, dict(told)
    )
