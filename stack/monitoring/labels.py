"""`mlstack labels ingest FILE`: late ground truth from a CSV file into the spine.

Each row is a label for one prediction: by `request_id` (and `row`, default 0), or by the
entity columns named on the command line with the time it was observed. The file is read
and checked whole before anything is stored: a bad row names its line and stores nothing.
A request id's label is stored once: the same id twice in one file with different labels
is refused naming both lines (identical repeats count once), and a later ingest replaces
it (`MonitoringRecords.record_labels`)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.errors import StackError
from stack.spine.records import GroundTruth
from stack.spine.timeutil import now_utc

ENCODING = "utf-8-sig"  # UTF-8, with or without the byte-order mark Excel writes


@dataclass(frozen=True)
class _Line:
    """One label as read, with the line of the file it came from."""

    line: int
    label: GroundTruth


def read_labels(
    path: Path,
    *,
    model: str,
    label_column: str = "label",
    entity: Sequence[str] = (),
    time_column: str = "observed_at",
) -> list[GroundTruth]:
    """The labels of the CSV file at `path`, one per distinct prediction. Raises StackError
    naming the file (and line, column and value) when it cannot be read, is not UTF-8, lacks
    a column, or a row is bad: an empty or non-finite label (NaN, inf), text among numeric
    labels, a bad `row` or time, or a request id labelled twice differently."""
    try:
        handle = path.open(newline="", encoding=ENCODING)
    except OSError as exc:
        raise StackError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        with handle:
            lines = list(_lines(path, handle, model, label_column, entity, time_column))
    except UnicodeDecodeError as exc:
        raise StackError(
            f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded); save it as CSV UTF-8"
        ) from None
    except csv.Error as exc:
        raise StackError(f"{path}: not a readable CSV file ({exc})") from None
    if not lines:
        raise StackError(f"{path}: no labels (only a header)")
    _check_label_types(path, lines, label_column)
    return _distinct(path, lines, label_column)


def _lines(
    path: Path,
    handle: Any,
    model: str,
    label_column: str,
    entity: Sequence[str],
    time_column: str,
) -> Iterator[_Line]:
    reader = csv.DictReader(handle)
    header = reader.fieldnames or []
    _check_header(path, header, label_column, entity)
    keyed_by_request = "request_id" in header
    now = now_utc()
    for record in reader:
        where = f"{path}:{reader.line_num}"
        value = (record.get(label_column) or "").strip()
        if not value:
            raise StackError(f"{where}: column {label_column!r} is empty")
        request_id = (record.get("request_id") or "").strip() if keyed_by_request else ""
        keys = {name: (record.get(name) or "").strip() for name in entity}
        if not request_id and not all(keys.values()):
            wanted = "request_id" + (f" or {', '.join(entity)}" if entity else "")
            raise StackError(f"{where}: no {wanted} to match the label to a prediction")
        label = GroundTruth(
            model=model,
            label=_finite_label(value, where, label_column),
            observed_at=_moment(record.get(time_column), where, time_column) or now,
            source=str(path),
            request_id=request_id or None,
            row=_row(record.get("row"), where),
            entity=None if request_id else keys,
        )
        yield _Line(reader.line_num, label)


def parse_label(text: str) -> Any:
    """`1` and `0.5` and `true` as numbers and booleans; anything else as text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, bool | int | float) else text


def _finite_label(text: str, where: str, column: str) -> Any:
    """The label `text` says (`parse_label`), unless it is NaN or an infinity (`NaN`, `inf`,
    `-Infinity`, `1e999`): no model learns from those."""
    value = parse_label(text)
    if isinstance(value, bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if math.isfinite(number):
        return value
    raise StackError(f"{where}: column {column!r} is {text!r}, not a finite number")


def _check_label_types(path: Path, lines: Sequence[_Line], column: str) -> None:
    """Refuse text among numeric labels (`N/A`, `?`): retraining could not use the column."""
    numeric = next((line for line in lines if _is_number(line.label.label)), None)
    text = next((line for line in lines if isinstance(line.label.label, str)), None)
    if numeric is not None and text is not None:
        raise StackError(
            f"{path}:{text.line}: column {column!r} is {text.label.label!r}, not a number "
            f"like the column's other labels ({numeric.label.label!r} on line {numeric.line})"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _distinct(path: Path, lines: Sequence[_Line], column: str) -> list[GroundTruth]:
    """One label per (request id, row): a repeat with the same label is dropped, one with a
    different label is refused naming both lines. Labels by entity key are kept as read."""
    first: dict[tuple[str, int], _Line] = {}
    labels: list[GroundTruth] = []
    for line in lines:
        label = line.label
        if label.request_id is None:
            labels.append(label)
            continue
        key = (label.request_id, label.row)
        seen = first.get(key)
        if seen is None:
            first[key] = line
            labels.append(label)
        elif not _same(seen.label.label, label.label):
            raise StackError(
                f"{path}:{line.line}: request {label.request_id!r} (row {label.row}) is "
                f"labelled {label.label!r} in column {column!r}, but {seen.label.label!r} on "
                f"line {seen.line}; give each prediction one label"
            )
    return labels


def _same(one: Any, other: Any) -> bool:
    """Equal labels (`1` and `1.0` are; `true` and `1` are not)."""
    return isinstance(one, bool) == isinstance(other, bool) and bool(one == other)


def _check_header(path: Path, header: Sequence[str], label: str, entity: Sequence[str]) -> None:
    if not header:
        raise StackError(f"{path}: empty file; the first line names the columns")
    missing = [name for name in (label, *entity) if name not in header]
    if missing:
        raise StackError(
            f"{path}: no column {', '.join(map(repr, missing))}; it has {', '.join(header)}"
        )
    if "request_id" not in header and not entity:
        raise StackError(
            f"{path}: a `request_id` column, or entity columns (--entity), must say which "
            "prediction each label belongs to"
        )


def _moment(text: str | None, where: str, column: str) -> datetime | None:
    if not text or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise StackError(f"{where}: {column} {text!r} is not an ISO date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row(text: str | None, where: str) -> int:
    """The `row` column: which row of the request the label is for (0 when empty)."""
    if text is None or not text.strip():
        return 0
    value = text.strip()
    if not (value.isascii() and value.isdigit()):
        raise StackError(
            f"{where}: column 'row' is {text!r}; it must be a whole number, 0 or more "
            "(the row of the request the label is for)"
        )
    return int(value)
