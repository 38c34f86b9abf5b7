"""Tracking runs a pipeline run opened and left open, found from any process.

A run opened during a step carries the pipeline run's id (PIPELINE_RUN_TAG); when the
process that opened it dies (kill -9, a lost machine), it stays RUNNING in MLflow. These
functions find such runs across every experiment and end them, for `mlstack doctor`."""

from __future__ import annotations

from collections.abc import Sequence

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from stack.contract.tracking import PIPELINE_RUN_TAG

_PAGE = 1000


def open_runs_by_pipeline_run(client: MlflowClient) -> dict[str, tuple[str, ...]]:
    """Ids of the RUNNING runs tagged with a pipeline run, by that pipeline run."""
    experiments = _experiment_ids(client)
    found: dict[str, list[str]] = {}
    if not experiments:
        return {}
    query = f"attributes.status = 'RUNNING' and tags.`{PIPELINE_RUN_TAG}` LIKE '%'"
    token: str | None = None
    while True:
        page = client.search_runs(
            experiments, query, ViewType.ACTIVE_ONLY, max_results=_PAGE, page_token=token
        )
        for run in page:
            found.setdefault(run.data.tags[PIPELINE_RUN_TAG], []).append(run.info.run_id)
        token = page.token
        if not token:
            return {key: tuple(sorted(ids)) for key, ids in found.items()}


def _experiment_ids(client: MlflowClient) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page = client.search_experiments(
            view_type=ViewType.ACTIVE_ONLY, max_results=_PAGE, page_token=token
        )
        ids.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return ids


def end_runs(client: MlflowClient, run_ids: Sequence[str], status: str) -> None:
    for run_id in run_ids:
        client.set_terminated(run_id, status)
