"""What the console's pages show, read from the spine in a few indexed queries per page.

Versions and their states are read back from the audit log (every registration and state
change is one entry, in the registry's order), so a page over 200 models and 100,000
entries does not ask the registry 2,000 times. Values are small frozen dataclasses; times
are aware UTC datetimes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stack.spine.schema import ApprovalRow, AuditEntryRow, MonitoringCheckRow
from stack.spine.store import SpineStore
from stack.spine.timeutil import from_text

#: States in which a version still waits for a decision.
PENDING = ("candidate", "approved", "shadow", "canary")
_VERSION_ACTIONS = ("model.registered", "state.changed")
_GATE_ACTIONS = ("gate.passed", "gate.failed")


@dataclass(frozen=True, slots=True)
class GateRecord:
    """One gate decision as audited: `rules` are (rule, passed, detail with its numbers)."""

    seq: int
    at: datetime
    target: str
    passed: bool
    rules: tuple[tuple[str, bool, str], ...]


@dataclass(frozen=True, slots=True)
class VersionRow:
    """A version as the audit log tells it: `ref` is `model@N`."""

    model: str
    number: int
    state: str
    registered_at: datetime
    author: str
    run_id: str | None
    changed_at: datetime
    gates: tuple[GateRecord, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.number}"


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One monitoring check (its `result` as the loop recorded it)."""

    id: int
    model: str
    version: str
    endpoint: str
    at: datetime
    window_end: datetime
    status: str
    result: dict[str, Any]
    report_uri: str | None


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One row of the inventory."""

    model: str
    versions: tuple[VersionRow, ...]
    serving: str | None
    endpoints: tuple[str, ...]
    last_check: CheckRow | None
    pending: int
    owner: str = "—"
    risk_tier: str = "—"
    states: dict[str, int] = field(default_factory=dict)

    @property
    def latest(self) -> VersionRow:
        return self.versions[-1]


def split_ref(ref: str) -> tuple[str, int] | None:
    """`churn@3` -> ("churn", 3); None for anything else (an endpoint, a prompt label)."""
    model, sep, number = ref.rpartition("@")
    if not sep or not model or not number.isdigit():
        return None
    return model, int(number)


class ReadModel:
    """The console's queries over one spine; every method is one snapshot read."""

    def __init__(self, spine: SpineStore) -> None:
        self.spine = spine

    def _session(self) -> Session:
        return Session(self.spine._reads)  # the spine's own snapshot reader

    # -- versions -----------------------------------------------------------------------

    def versions(self, model: str | None = None) -> dict[str, list[VersionRow]]:
        """Every version of `model` (or of every model), oldest first, by model."""
        query = select(
            AuditEntryRow.seq,
            AuditEntryRow.at,
            AuditEntryRow.actor,
            AuditEntryRow.action,
            AuditEntryRow.subject,
            AuditEntryRow.payload,
        ).where(AuditEntryRow.action.in_(_VERSION_ACTIONS + (_GATE_ACTIONS if model else ())))
        if model is not None:
            query = query.where(AuditEntryRow.subject.like(f"{_escape(model)}@%", escape="\\"))
        with self._session() as session:
            rows = session.execute(query.order_by(AuditEntryRow.seq)).all()
        found: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for seq, at, actor, action, subject, payload in rows:
            parts = split_ref(subject)
            if parts is None or (model is not None and parts[0] != model):
                continue
            name, number = parts
            data = json.loads(payload)
            moment = from_text(at)
            if action == "model.registered":
                found[name][number] = {
                    "state": str(data.get("state", "candidate")),
                    "registered_at": moment,
                    "author": actor,
                    "run_id": data.get("run_id"),
                    "changed_at": moment,
                    "gates": [],
                }
                continue
            known = found[name].get(number)
            if known is None:  # an entry for a version registered outside mlstack
                continue
            if action == "state.changed" and "to" in data:
                known["state"], known["changed_at"] = str(data["to"]), moment
            elif action in _GATE_ACTIONS:
                known["gates"].append(_gate(seq, moment, action, data))
        return {
            name: [
                VersionRow(
                    model=name,
                    number=number,
                    state=v["state"],
                    registered_at=v["registered_at"],
                    author=v["author"],
                    run_id=v["run_id"],
                    changed_at=v["changed_at"],
                    gates=tuple(v["gates"]),
                )
                for number, v in sorted(by_number.items())
            ]
            for name, by_number in sorted(found.items())
        }

    # -- monitoring ---------------------------------------------------------------------

    def last_checks(self) -> dict[str, CheckRow]:
        """The newest check of each model."""
        newest = (
            select(func.max(MonitoringCheckRow.id)).group_by(MonitoringCheckRow.model).subquery()
        )
        query = select(MonitoringCheckRow).where(MonitoringCheckRow.id.in_(select(newest)))
        with self._session() as session:
            return {r.model: _check(r) for r in session.execute(query).scalars()}

    def checks(self, model: str, *, limit: int, offset: int = 0) -> tuple[list[CheckRow], int]:
        """Checks of `model`, newest first, one page of them, and how many there are."""
        where = MonitoringCheckRow.model == model
        with self._session() as session:
            total = session.execute(select(func.count()).where(where)).scalar_one()
            rows = session.execute(
                select(MonitoringCheckRow)
                .where(where)
                .order_by(MonitoringCheckRow.id.desc())
                .limit(limit)
                .offset(offset)
            ).scalars()
            return [_check(r) for r in rows], int(total)

    def check(self, check_id: int) -> CheckRow | None:
        with self._session() as session:
            row = session.get(MonitoringCheckRow, check_id)
            return None if row is None else _check(row)

    def monitored_models(self) -> list[str]:
        with self._session() as session:
            return sorted(
                session.execute(select(MonitoringCheckRow.model).distinct()).scalars().all()
            )

    # -- endpoints ----------------------------------------------------------------------

    def routed(
        self, endpoint: str | None = None
    ) -> dict[str, list[tuple[datetime, dict[str, float], str]]]:
        """Each endpoint's traffic splits, oldest first: (when, weights by version, reason)."""
        query = select(
            AuditEntryRow.at, AuditEntryRow.subject, AuditEntryRow.payload, AuditEntryRow.reason
        ).where(AuditEntryRow.action == "endpoint.routed")
        if endpoint is not None:
            query = query.where(AuditEntryRow.subject == f"endpoint:{endpoint}")
        splits: dict[str, list[tuple[datetime, dict[str, float], str]]] = defaultdict(list)
        with self._session() as session:
            for at, subject, payload, reason in session.execute(query.order_by(AuditEntryRow.seq)):
                weights = dict(json.loads(payload).get("weights", {}))
                name = subject.removeprefix("endpoint:")
                splits[name].append(
                    (from_text(at), {str(k): float(v) for k, v in weights.items()}, reason)
                )
        return dict(splits)

    # -- approvals ----------------------------------------------------------------------

    def approvals_of(self, refs: list[str]) -> dict[str, list[tuple[str, str, str, str]]]:
        """(target state, actor, decision, reason) of each version in `refs`."""
        found: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        if not refs:
            return found
        with self._session() as session:
            rows = session.execute(
                select(
                    ApprovalRow.subject,
                    ApprovalRow.target_state,
                    ApprovalRow.actor,
                    ApprovalRow.decision,
                    ApprovalRow.reason,
                )
                .where(ApprovalRow.subject.in_(refs))
                .order_by(ApprovalRow.id)
            )
            for subject, target, actor, decision, reason in rows:
                found[subject].append((target, actor, decision, reason))
        return found

    # -- the inventory ------------------------------------------------------------------

    def inventory(self) -> list[ModelSummary]:
        versions = self.versions()
        checks = self.last_checks()
        endpoints: dict[str, set[str]] = defaultdict(set)
        for name, splits in self.routed().items():
            for ref in splits[-1][1]:
                parts = split_ref(ref)
                if parts:
                    endpoints[parts[0]].add(name)
        summaries = []
        for model, rows in versions.items():
            states: dict[str, int] = defaultdict(int)
            for row in rows:
                states[row.state] += 1
            serving = next((r.ref for r in reversed(rows) if r.state == "serving"), None)
            summaries.append(
                ModelSummary(
                    model=model,
                    versions=tuple(rows),
                    serving=serving,
                    endpoints=tuple(sorted(endpoints.get(model, ()))),
                    last_check=checks.get(model),
                    pending=sum(1 for r in rows if r.state in PENDING),
                    states=dict(states),
                )
            )
        return summaries


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _gate(seq: int, at: datetime, action: str, data: dict[str, Any]) -> GateRecord:
    rules = tuple(
        (str(r.get("rule", "")), bool(r.get("passed")), str(r.get("detail", "")))
        for r in data.get("rules", [])
    )
    return GateRecord(seq, at, str(data.get("target", "")), action == "gate.passed", rules)


def _check(row: MonitoringCheckRow) -> CheckRow:
    try:
        result = json.loads(row.result)
    except ValueError:
        result = {}
    return CheckRow(
        id=row.id,
        model=row.model,
        version=row.version,
        endpoint=row.endpoint,
        at=from_text(row.at),
        window_end=from_text(row.window_end),
        status=row.status,
        result=result if isinstance(result, dict) else {},
        report_uri=row.report_uri,
    )
