"""`ClientReads`: MLflow's own client (every store the light reads cannot read)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stack_mlflow.light.records import StoredDataset, StoredRun, StoredVersion, datasets_in_order

if TYPE_CHECKING:
    from mlflow import MlflowClient


class ClientReads:
    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def model_names(self) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            page = self.client.search_registered_models(page_token=token)
            names.extend(m.name for m in page)
            token = page.token
            if not token:
                return sorted(names)

    def versions(self, model: str) -> list[StoredVersion]:
        return sorted(self._search(f"name='{model}'"), key=lambda v: v.version)

    def by_run(self, run_id: str) -> list[StoredVersion]:
        return self._search(f"run_id='{run_id}'")

    def version(self, model: str, number: int) -> StoredVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return from_entity(self.client.get_model_version(model, str(number)))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def alias(self, model: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(model, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def run(self, run_id: str) -> StoredRun | None:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        inputs = run.inputs.dataset_inputs if run.inputs else []
        return StoredRun(
            run_id=run.info.run_id,
            experiment=self.client.get_experiment(run.info.experiment_id).name,
            status=run.info.status,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
            datasets=datasets_in_order(
                StoredDataset(
                    i.dataset.name,
                    i.dataset.digest,
                    i.dataset.source_type,
                    i.dataset.source,
                    i.dataset.profile,
                )
                for i in inputs
            ),
        )

    def _search(self, filter_string: str) -> list[StoredVersion]:
        found: list[StoredVersion] = []
        token = None
        while True:
            page = self.client.search_model_versions(filter_string, page_token=token)
            found.extend(from_entity(v) for v in page)
            token = page.token
            if not token:
                return found


def from_entity(version: Any) -> StoredVersion:
    return StoredVersion(
        name=version.name,
        version=int(version.version),
        source=version.source or "",
        run_id=version.run_id or None,
        created_ms=int(version.creation_timestamp or 0),
        tags=dict(version.tags),
    )
