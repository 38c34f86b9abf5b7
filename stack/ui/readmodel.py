"""What the console's pages show, read from the spine in a few indexed queries per page.

Versions and their states are read back from the audit log (every registration and state
change is one entry, in the registry's order), so a page over 200 models and 100,000
entries does not ask the registry 2,000 times. Values are small frozen dataclasses; times
are aware UTC datetimes.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stack.rollout.history import TRAFFIC_CHANGES, stop_reason
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
    #: The newest check of the serving version (None: nothing serves, or not checked yet).
    last_check: CheckRow | None
    owner: str = "—"
    risk_tier: str = "—"
    states: dict[str, int] = field(default_factory=dict)

    @property
    def latest(self) -> VersionRow:
        return self.versions[-1]


def split_ref(ref: str) -> tuple[str, int] | None:
    """`churn@3` -> ("churn", 3); None for anything else (an endpoint, a prompt label)."""
    model, sep, number = ref.rpartition("@")
    if not sep or not model or not (number.isascii() and number.isdigit()):
        return None
    return model, int(number)


@dataclass(slots=True)
class _Folded:
    """A version as the entries read so far tell it (mutable: later entries update it)."""

    state: str
    registered_at: datetime
    author: str
    run_id: str | None
    changed_at: datetime
    gates: list[GateRecord]

    def row(self, model: str, number: int) -> VersionRow:
        return VersionRow(
            model=model,
            number=number,
            state=self.state,
            registered_at=self.registered_at,
            author=self.author,
            run_id=self.run_id,
            changed_at=self.changed_at,
            gates=tuple(self.gates),
        )


class ReadModel:
    """The console's queries over one spine.

    The audit log is append-only, so what it says of versions and traffic splits is folded
    in once: each call reads only the entries appended since the last (by `seq`, the
    primary key), and a page over 100,000 entries costs what the new ones cost. Tampering
    is `verify`'s to find (the audit page shows it), not this fold's."""

    def __init__(self, spine: SpineStore) -> None:
        self.spine = spine
        self._lock = threading.Lock()
        self._seen = 0  # the last audit seq folded in
        self._versions: dict[str, dict[int, _Folded]] = defaultdict(dict)
        self._routed: dict[str, list[tuple[datetime, dict[str, float], str]]] = defaultdict(list)
        self._shadows: dict[str, list[tuple[str, ...]]] = defaultdict(list)  # by split
        self._rollout_events: dict[str, tuple[datetime, str, dict[str, Any], str]] = {}
        self._checks_seen = 0
        self._last_check: dict[str, CheckRow] = {}
        self._last_of_version: dict[str, CheckRow] = {}

    def _session(self) -> Session:
        return Session(self.spine._reads)  # the spine's own snapshot reader

    @contextmanager
    def _folding(self) -> Iterator[Session]:
        """A read session with its spine connection already checked out, then the fold's
        lock: the lock is never held while waiting for a pooled connection (else every
        page would queue behind one that waits, and the server's threads with them)."""
        with self._session() as session:
            session.connection()  # a pool timeout here is a 503 page, the lock not taken
            with self._lock:
                yield session

    def _catch_up(self, session: Session) -> None:
        """Fold in the entries appended since the last call (all of them the first time)."""
        query = (
            select(
                AuditEntryRow.seq,
                AuditEntryRow.at,
                AuditEntryRow.actor,
                AuditEntryRow.action,
                AuditEntryRow.subject,
                AuditEntryRow.payload,
                AuditEntryRow.reason,
            )
            .where(AuditEntryRow.seq > self._seen)
            .order_by(AuditEntryRow.seq)
        )
        rows = session.execute(query).all()
        for seq, at, actor, action, subject, payload, reason in rows:
            self._seen = seq
            if action in TRAFFIC_CHANGES:  # a stop: nothing takes traffic from then on
                stopped = action == "endpoint.undeployed"
                data = {} if stopped else json.loads(payload)
                weights = dict(data.get("weights", {}))
                name = subject.removeprefix("endpoint:")
                why = "endpoint stopped: " + stop_reason(reason, actor) if stopped else reason
                self._routed[name].append(
                    (from_text(at), {str(k): float(v) for k, v in weights.items()}, why)
                )
                self._shadows[name].append(tuple(str(s) for s in data.get("shadows") or ()))
            elif action.startswith("rollout.") and subject.startswith("endpoint:"):
                data = json.loads(payload)
                self._rollout_events[subject.removeprefix("endpoint:")] = (
                    from_text(at),
                    action,
                    data if isinstance(data, dict) else {},
                    reason,
                )
            elif action in _VERSION_ACTIONS or action in _GATE_ACTIONS:
                self._fold_version(seq, from_text(at), actor, action, subject, json.loads(payload))

    def _fold_version(
        self, seq: int, moment: datetime, actor: str, action: str, subject: str, data: Any
    ) -> None:
        parts = split_ref(subject)
        if parts is None or not isinstance(data, dict):
            return
        name, number = parts
        if action == "model.registered":
            if data.get("kind", "model_version") != "model_version":
                return  # a prompt's version (the prompt registry's): not a model
            self._versions[name][number] = _Folded(
                state=str(data.get("state", "candidate")),
                registered_at=moment,
                author=actor,
                run_id=data.get("run_id"),
                changed_at=moment,
                gates=[],
            )
            return
        known = self._versions.get(name, {}).get(number)
        if known is None:  # an entry for a version registered outside mlstack
            return
        if action == "state.changed" and "to" in data:
            known.state, known.changed_at = str(data["to"]), moment
        elif action in _GATE_ACTIONS:
            known.gates.append(_gate(seq, moment, action, data))

    # -- versions -----------------------------------------------------------------------

    def versions(self, model: str | None = None) -> dict[str, list[VersionRow]]:
        """Every version of `model` (or of every model), oldest first, by model."""
        with self._folding() as session:
            self._catch_up(session)
            names = [model] if model is not None else sorted(self._versions)
            return {
                name: [v.row(name, n) for n, v in sorted(self._versions[name].items())]
                for name in names
                if self._versions.get(name)
            }

    # -- monitoring ---------------------------------------------------------------------

    def last_checks(self) -> dict[str, CheckRow]:
        """The newest check of each model (checks are appended: read only the new ones)."""
        with self._folding() as session:
            rows = session.execute(
                select(MonitoringCheckRow)
                .where(MonitoringCheckRow.id > self._checks_seen)
                .order_by(MonitoringCheckRow.id)
            ).scalars()
            newest: dict[str, MonitoringCheckRow] = {}
            of_version: dict[str, MonitoringCheckRow] = {}
            for row in rows:
                self._checks_seen = row.id
                newest[row.model] = of_version[row.version] = row
            self._last_check.update({model: _check(row) for model, row in newest.items()})
            self._last_of_version.update({v: _check(row) for v, row in of_version.items()})
            return dict(self._last_check)

    def last_check_of(self, version: str) -> CheckRow | None:
        """The newest check of `version` (`churn@2`), None if it was never checked."""
        self.last_checks()
        with self._lock:
            return self._last_of_version.get(version)

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
        """Each endpoint's traffic splits, oldest first: (when, weights by version, reason);
        a stop (`endpoint.undeployed`) is a split of no weights, its reason saying so."""
        with self._folding() as session:
            self._catch_up(session)
            names = [endpoint] if endpoint is not None else sorted(self._routed)
            return {name: list(self._routed[name]) for name in names if self._routed.get(name)}

    def shadows(self, endpoint: str) -> list[tuple[str, ...]]:
        """The versions shadowing each of `endpoint`'s traffic splits (as `routed` lists
        them): what got a copy of the requests without answering them."""
        with self._folding() as session:
            self._catch_up(session)
            return list(self._shadows.get(endpoint, ()))

    def last_rollout_event(self, endpoint: str) -> tuple[datetime, str, dict[str, Any], str] | None:
        """The endpoint's newest `rollout.*` entry: (when, action, payload, reason)."""
        with self._folding() as session:
            self._catch_up(session)
            return self._rollout_events.get(endpoint)

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
                    last_check=self.last_check_of(serving) if serving else None,
                    states=dict(states),
                )
            )
        return summaries


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
