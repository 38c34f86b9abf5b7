"""The training reference of a model version: the rows monitoring compares windows with.

A training step saves it (`save_reference(session, run_id, frame)`), with the model's own
predictions on those rows in a `prediction` column when prediction drift is to be checked.
It is a parquet file under the stack's home, keyed by the training run, logged to the
tracker with the run, and linked in the lineage; a version finds it through its run."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stack.atomic import atomic_path
from stack.contract.registry import ModelVersion
from stack.contract.roles import Role
from stack.contract.tracking import RunRef
from stack.errors import StackError
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef

Columns = dict[str, list[Any]]


def reference_path(session: StackSession, run_id: str) -> Path:
    return session.home / "monitoring" / "references" / f"{run_id}.parquet"


def save_reference(
    session: StackSession, run_id: str, frame: Mapping[str, Sequence[Any]] | Any
) -> Path:
    """Store `frame` as the monitoring reference of the models run `run_id` trains, and
    return the parquet file written under the stack's home.

    `frame`: a pandas DataFrame or a mapping of column name to equal-length sequences, with
    the model's input columns as the endpoint receives them (rows: usually the training
    set; a few thousand are plenty). `mlstack monitor run` compares each window of traffic
    with it. Raises StackError for no rows or columns of different lengths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(frame, Mapping):
        lengths = {len(values) for values in frame.values()}
        if len(lengths) > 1:
            raise StackError(f"reference columns differ in length: {sorted(lengths)}")
        table = pa.table({str(k): list(v) for k, v in frame.items()})
    elif hasattr(frame, "to_dict"):
        table = pa.Table.from_pandas(frame, preserve_index=False)
    else:
        raise StackError(f"a reference is a mapping of columns or a DataFrame, not {type(frame)}")
    if table.num_rows == 0:
        raise StackError("the reference has no rows")
    path = reference_path(session, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        pq.write_table(table, partial)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    snapshot = NodeRef(NodeKind.DATA_SNAPSHOT, f"sha256:{digest}")
    session.spine.link(
        snapshot,
        NodeRef(NodeKind.RUN, run_id),
        "reference_of",
        attributes={snapshot: {"rows": table.num_rows, "columns": table.column_names}},
    )
    if session.has(Role.TRACKER):
        record = session.tracker.get_run(run_id)
        session.tracker.log_artifact(
            RunRef(run_id, record.ref.experiment), path, artifact_path="monitoring"
        )
    return path


def load_reference(session: StackSession, version: ModelVersion) -> Columns:
    """The reference of `version`, as columns; a StackError saying why when there is none."""
    import pyarrow.parquet as pq

    if not version.run_id:
        raise StackError(f"{version.ref} has no training run, so no monitoring reference")
    path = reference_path(session, version.run_id)
    if not path.exists():
        raise StackError(
            f"{version.ref} has no monitoring reference: its training run {version.run_id} "
            "saved none (call stack.monitoring.save_reference in the training step)"
        )
    columns: Columns = pq.read_table(path).to_pydict()
    return columns
