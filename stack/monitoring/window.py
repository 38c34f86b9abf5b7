"""A window of an endpoint's log, as monitoring reads it: one row per record answered by
each version, with the late labels that were joined to it.

Labels come from the spine (`mlstack labels ingest`) and from the endpoint's `/feedback`
(logged beside the answers). A label finds its prediction by request id and row; or, when it
carries an entity key, the latest prediction for that key (in the logged inputs) within the
join window before the label was observed. A later label for the same prediction replaces
an earlier one.

Requests carry their client's tag (`LoggedRequest.traffic`: live, bake, test, synthetic); a
window keeps the kinds it is told to (`monitoring.include_traffic`, live alone by default),
so a rollout's bake traffic or a test suite's requests do not pass for users."""

from __future__ import annotations

import bisect
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stack.contract.serving import LoggedRequest
from stack.spine.records import GroundTruth

ANSWERED = frozenset({"live", "fallback"})
LIVE_TRAFFIC = frozenset({"live"})


@dataclass
class VersionWindow:
    """The records one version answered in the window, in the order they were answered.

    A streamed window (`stream.py`) holds a sample of them: `total_rows` is then the exact
    count of requests answered, `sampled_rows` the records held (None when the window is
    whole) and `estimated_rows` the window's records estimated from the sample."""

    version: str
    records: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    keys: list[tuple[str, int]] = field(default_factory=list)  # (request id, row)
    times: list[datetime] = field(default_factory=list)
    total_rows: int | None = None
    sampled_rows: int | None = None
    estimated_rows: int | None = None

    @property
    def rows(self) -> int:
        """Records in the window (estimated from the sample when it was sampled)."""
        return self.estimated_rows if self.estimated_rows is not None else len(self.records)

    def columns(self, names: Sequence[str]) -> dict[str, list[Any]]:
        """The named input columns (None where a record lacks one)."""
        return {name: [record.get(name) for record in self.records] for name in names}

    def input_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)


@dataclass(frozen=True)
class JoinStats:
    labels: int
    matched: int
    entity_matched: int = 0  # of `matched`: labels joined by entity key

    @property
    def unmatched(self) -> int:
        return self.labels - self.matched


def split_by_version(
    logged: Iterable[LoggedRequest],
    until: datetime,
    traffic: Collection[str] = LIVE_TRAFFIC,
) -> dict[str, VersionWindow]:
    """The answered records before `until` of the `traffic` kinds, grouped by the version
    that answered them."""
    windows: dict[str, VersionWindow] = {}
    for request in logged:
        if request.role not in ANSWERED or request.status != 200 or request.at >= until:
            continue
        if request.traffic not in traffic:
            continue
        window = windows.setdefault(request.model_version, VersionWindow(request.model_version))
        for row, (record, output) in enumerate(zip(request.inputs, request.outputs, strict=False)):
            window.records.append(dict(record))
            window.predictions.append(output)
            window.labels.append(None)
            window.keys.append((request.request_id, row))
            window.times.append(request.at)
    return windows


def feedback_labels(logged: Iterable[LoggedRequest], model: str) -> list[GroundTruth]:
    """Labels sent to the endpoint's `/feedback`, as ground truth."""
    labels: list[GroundTruth] = []
    for request in logged:
        if request.role != "feedback":
            continue
        for record, label in zip(request.inputs, request.outputs, strict=False):
            row = record.get("row", 0)
            labels.append(
                GroundTruth(
                    model=model,
                    label=label,
                    observed_at=request.at,
                    source="feedback",
                    request_id=request.request_id,
                    row=row if isinstance(row, int) else 0,
                )
            )
    return labels


def join_labels(
    windows: dict[str, VersionWindow],
    labels: Iterable[GroundTruth],
    *,
    entity: Sequence[str],
    join_window: timedelta,
) -> JoinStats:
    """Attach each label to its prediction, oldest label first (so later ones win). The
    stats count distinct labels (`label_key`): a prediction labelled twice counts once."""
    by_key: dict[tuple[str, int], tuple[VersionWindow, int]] = {}
    by_entity: dict[str, list[tuple[datetime, VersionWindow, int]]] = {}
    for window in windows.values():
        for index, key in enumerate(window.keys):
            by_key[key] = (window, index)
            if entity:
                record = window.records[index]
                if all(name in record for name in entity):
                    entity_key = _entity_key({name: record[name] for name in entity})
                    by_entity.setdefault(entity_key, []).append(
                        (window.times[index], window, index)
                    )
    for candidates in by_entity.values():
        candidates.sort(key=lambda c: c[0])
    times = {key: [c[0] for c in candidates] for key, candidates in by_entity.items()}
    seen: set[tuple[str, ...]] = set()
    matched: set[tuple[str, ...]] = set()
    for label in sorted(labels, key=lambda g: g.observed_at):
        about = label_key(label)
        seen.add(about)
        found: tuple[VersionWindow, int] | None = None
        if label.request_id is not None:
            found = by_key.get((label.request_id, label.row))
        elif label.entity is not None:
            entity_key = _entity_key(label.entity)
            found = _latest_before(
                by_entity.get(entity_key, []),
                times.get(entity_key, []),
                label.observed_at,
                join_window,
            )
        if found is not None:
            window, index = found
            window.labels[index] = label.label
            matched.add(about)
    by_entity_key = sum(1 for about in matched if about[0] == "entity")
    return JoinStats(labels=len(seen), matched=len(matched), entity_matched=by_entity_key)


def label_key(label: GroundTruth) -> tuple[str, ...]:
    """What a label is about, so that it counts once however often it arrived (by CSV and by
    `/feedback`, or corrected later): its request id and row, else its entity key and time."""
    if label.request_id is not None:
        return ("request", label.request_id, str(label.row))
    return ("entity", _entity_key(label.entity or {}), label.observed_at.isoformat())


def _latest_before(
    candidates: list[tuple[datetime, VersionWindow, int]],
    times: list[datetime],  # the candidates' times, sorted once per join
    moment: datetime,
    span: timedelta,
) -> tuple[VersionWindow, int] | None:
    position = bisect.bisect_right(times, moment)
    if position == 0:
        return None
    at, window, index = candidates[position - 1]
    return (window, index) if moment - at <= span else None


def _entity_key(values: Any) -> str:
    """Values compared as text: a CSV label says "42" where the request sent 42."""
    return json.dumps({str(k): str(values[k]) for k in sorted(values)}, sort_keys=True)
