"""`mlstack labels ingest FILE`: late ground truth from a CSV file into the spine.

Each row is a label for one prediction: by `request_id` (and `row`, default 0), or by the
entity columns named on the command line with the time it was observed. The file is read
and checked whole before anything is stored: a bad row names its line and stores nothing."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.errors import StackError
from stack.spine.records import GroundTruth
from stack.spine.timeutil import now_utc


def read_labels(
    path: Path,
    *,
    model: str,
    label_column: str = "label",
    entity: Sequence[str] = (),
    time_column: str = "observed_at",
) -> list[GroundTruth]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise StackError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        _check_header(path, header, label_column, entity)
        keyed_by_request = "request_id" in header
        now = now_utc()
        labels: list[GroundTruth] = []
        for line, record in enumerate(reader, start=2):
            where = f"{path}:{line}"
            value = (record.get(label_column) or "").strip()
            if not value:
                raise StackError(f"{where}: column {label_column!r} is empty")
            request_id = (record.get("request_id") or "").strip() if keyed_by_request else ""
            keys = {name: (record.get(name) or "").strip() for name in entity}
            if not request_id and not all(keys.values()):
                wanted = "request_id" + (f" or {', '.join(entity)}" if entity else "")
                raise StackError(f"{where}: no {wanted} to match the label to a prediction")
            labels.append(
                GroundTruth(
                    model=model,
                    label=parse_label(value),
                    observed_at=_moment(record.get(time_column), where, time_column) or now,
                    source=str(path),
                    request_id=request_id or None,
                    row=_row(record.get("row"), where),
                    entity=None if request_id else keys,
                )
            )
    if not labels:
        raise StackError(f"{path}: no labels (only a header)")
    return labels


def parse_label(text: str) -> Any:
    """`1` and `0.5` and `true` as numbers and booleans; anything else as text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, bool | int | float) else text


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
    if text is None or not text.strip():
        return 0
    if not text.strip().isdigit():
        raise StackError(f"{where}: row {text!r} is not a whole number")
    return int(text)
