"""A spill file (metrics and a final status MLflow could not take while unreachable)
uploaded once MLflow is back: `mlstack tracking replay`."""

from __future__ import annotations

import sys
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from stack.errors import StackError
from stack_mlflow import refusals, spill
from stack_mlflow.connection import safe_uri


def replay_spill(client: MlflowClient, path: Path, *, uri: str, batch_size: int) -> int:
    """Upload the spill file at `path` through `client` (MLflow at `uri`), `batch_size`
    points a call; returns the points written.

    Safe to run twice: MLflow ignores a metric point it already has. Points the store
    refuses on their merits (a file from a version that did not check names) are reported
    on stderr and not counted; the others are written. The file is kept as `.replayed`.
    StackError when the file cannot be read or MLflow refuses the upload (nothing is lost).
    """
    try:
        contents = spill.read_spill(path)
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot replay {path}: {exc}") from exc
    points = [Metric(k, v, t, s) for k, v, t, s in contents.points]
    refused: list[refusals.Refusal] = []
    try:
        for start in range(0, len(points), batch_size):
            refused += refusals.write_splitting(
                lambda batch: client.log_batch(contents.run_id, metrics=batch),
                points[start : start + batch_size],
            )
        if contents.final_status:
            client.set_terminated(contents.run_id, contents.final_status)
    except MlflowException as exc:
        raise StackError(
            f"cannot replay {path} into {safe_uri(uri)}: {exc.message}; "
            "nothing was lost, run the replay again once this is fixed"
        ) from exc
    if refused:
        print(
            f"mlstack: {refusals.describe(contents.run_id, refused)} "
            f"(they stay in {path.with_suffix('.replayed')})",
            file=sys.stderr,
        )
    path.rename(path.with_suffix(".replayed"))
    return len(points) - len(refused)
