"""Where prediction-log rows wait while the log cannot take them: a local spill folder.

When a flush to the log fails (a folder that cannot be written, a database that is down),
its rows are written here as parquet files (`<pid>-<ns>-<n>.parquet`, the log's own schema,
written under a temporary name and renamed) and replayed into the log at a later flush, once
the log takes rows again. Any worker replays any file: it first claims it by renaming it to
`<name>.claimed-<pid>` (one rename wins), writes its rows to the log, then deletes it; a
claim whose worker died is taken over. A worker killed between the write and the delete
replays that file again: rows may be logged twice, never lost.

The folder is `<home>/prediction-spill/<endpoint>/` for an endpoint the adapter serves
(outside the endpoint's own folder, so an undeploy keeps what waits there; the next server
of the same endpoint replays it), `$TMPDIR/mlstack-prediction-spill/<endpoint>/` in a
packaged bento."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.atomic import atomic_path
from stack_bentoml.predictlog import Prediction, Sink, batch, schema

CLAIMED = ".claimed-"


def default_spill_dir(endpoint: str) -> Path:
    """Where a packaged endpoint (no adapter home) spills: under the temporary folder."""
    return Path(tempfile.gettempdir()) / "mlstack-prediction-spill" / endpoint


@dataclass(frozen=True, slots=True)
class Waiting:
    """What waits in a spill folder: `rows` in `files` files."""

    files: int
    rows: int


def waiting(folder: Path) -> Waiting:
    """The rows waiting in `folder` (claimed ones included), read from the files' footers;
    nothing when the folder does not exist. A file that cannot be read counts no rows."""
    import pyarrow.parquet as pq

    files = rows = 0
    for path in _spilled(folder, claimed=True):
        files += 1
        try:
            rows += pq.ParquetFile(path).metadata.num_rows
        except Exception:  # being renamed or written this moment: counted next time
            continue
    return Waiting(files, rows)


class SpillFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sequence = 0

    def write(self, entries: list[Prediction]) -> None:
        """Keep `entries` in a new file; raises OSError when the folder cannot take it."""
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"{os.getpid()}-{time.time_ns()}-{self._sequence}.parquet"
        with atomic_path(self.folder / name) as partial:
            pq.write_table(batch_table(entries), partial)

    def has_files(self) -> bool:
        return any(True for _ in _spilled(self.folder, claimed=True))

    def replay(self, sink: Sink) -> int:
        """Write every waiting file into `sink`, oldest first, and delete it; returns the
        rows replayed. Raises what the sink raises (the file it was writing stays)."""
        replayed = 0
        for path in sorted(_spilled(self.folder, claimed=True), key=_age):
            claimed = self._claim(path)
            if claimed is None:
                continue
            try:
                entries = read_spilled(claimed)
                sink.write(entries)
            except Exception:
                os.replace(claimed, _unclaimed(claimed))  # another flush tries it again
                raise
            claimed.unlink(missing_ok=True)
            replayed += len(entries)
        return replayed

    def _claim(self, path: Path) -> Path | None:
        """`path` renamed as this process's claim; None when another live worker holds it."""
        if CLAIMED in path.name:
            owner = path.name.rpartition(CLAIMED)[2]
            if owner.isdigit() and int(owner) != os.getpid() and _alive(int(owner)):
                return None
        mine = self.folder / f"{_unclaimed(path).name}{CLAIMED}{os.getpid()}"
        try:
            os.replace(path, mine)
        except FileNotFoundError:  # another worker claimed it first
            return None
        return mine


def batch_table(entries: list[Prediction]) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches([batch(entries)], schema=schema())


def read_spilled(path: Path) -> list[Prediction]:
    import pyarrow.parquet as pq

    rows = pq.read_table(path, schema=schema()).to_pylist()
    return [
        Prediction(
            request_id=r["request_id"],
            ts=r["ts"].timestamp(),
            endpoint=r["endpoint"],
            model_version=r["model_version"],
            role=r["role"],
            status=r["status"],
            latency_ms=r["latency_ms"],
            inputs=r["inputs"],
            output=_loads(r["output"]),
            error=r["error"],
            live_output=_loads(r["live_output"]),
            traffic=r["traffic"] or "live",
        )
        for r in rows
    ]


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _spilled(folder: Path, *, claimed: bool) -> list[Path]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [
        folder / n
        for n in names
        if not n.startswith(".") and (n.endswith(".parquet") or (claimed and CLAIMED in n))
    ]


def _unclaimed(path: Path) -> Path:
    return path.with_name(path.name.partition(CLAIMED)[0])


def _age(path: Path) -> tuple[int, str]:
    stem = _unclaimed(path).name
    parts = stem.split("-")
    return (int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0, stem)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True
