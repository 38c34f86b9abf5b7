"""Spill files: metrics (and a run's final status) that could not be written yet.

JSON lines: a header naming the run and tracking URI, then one line per point, and possibly
a last line with the status the run should be finished with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "mlstack-tracking-spill/1"


@dataclass(frozen=True)
class SpillContents:
    run_id: str
    tracking_uri: str
    points: list[tuple[str, float, int, int]]
    final_status: str | None


def spill_path(directory: Path, run_id: str) -> Path:
    return directory / f"{run_id}.jsonl"


def append_points(directory: Path, run_id: str, tracking_uri: str, points: Iterable[Any]) -> Path:
    """Append MLflow Metric objects to the run's spill file (created with its header)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = spill_path(directory, run_id)
    new = not path.exists()
    with path.open("a", encoding="utf-8") as out:
        if new:
            out.write(
                json.dumps({"format": FORMAT, "run_id": run_id, "tracking_uri": tracking_uri})
                + "\n"
            )
        for p in points:
            out.write(json.dumps({"k": p.key, "v": p.value, "t": p.timestamp, "s": p.step}) + "\n")
        out.flush()
    return path


def append_final_status(directory: Path, run_id: str, tracking_uri: str, status: str) -> Path:
    path = append_points(directory, run_id, tracking_uri, [])
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"final_status": status}) + "\n")
    return path


def read_spill(path: Path) -> SpillContents:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path}: empty, not a spill file")
    header = json.loads(lines[0])
    if header.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not an mlstack tracking spill file (format {header.get('format')!r})"
        )
    points: list[tuple[str, float, int, int]] = []
    final_status = None
    for number, line in enumerate(lines[1:], start=2):
        record = json.loads(line)
        if "final_status" in record:
            final_status = record["final_status"]
        elif {"k", "v", "t", "s"} <= record.keys():
            points.append((record["k"], float(record["v"]), int(record["t"]), int(record["s"])))
        else:
            raise ValueError(f"{path}:{number}: unexpected record {record}")
    return SpillContents(header["run_id"], header["tracking_uri"], points, final_status)
