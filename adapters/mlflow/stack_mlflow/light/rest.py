"""`RestReads`: an MLflow tracking server's REST API 2.0, over httpx."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from stack_mlflow.connection import UNRESOLVABLE_HINT
from stack_mlflow.light.records import (
    PAGE,
    StoredDataset,
    StoredRun,
    StoredVersion,
    datasets_in_order,
)

if TYPE_CHECKING:
    from stack_mlflow.config import MlflowConnection


class RestReads:
    """MLflow's REST API 2.0 (the calls MLflow's own client makes), with the credentials and
    TLS settings MLflow's client would use: the stack's connection first, then MLflow's
    environment variables (basic auth from username/password, else a bearer token)."""

    def __init__(self, uri: str, config: MlflowConnection) -> None:
        import httpx

        env = os.environ.get
        username = config.username or env("MLFLOW_TRACKING_USERNAME")
        password = (config.password.get_secret_value() if config.password else None) or env(
            "MLFLOW_TRACKING_PASSWORD"
        )
        token = (config.token.get_secret_value() if config.token else None) or env(
            "MLFLOW_TRACKING_TOKEN"
        )
        headers = {}
        if username and password:
            pair = f"{username}:{password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif token:
            headers["Authorization"] = "Bearer " + token
        # MLflow's own TLS settings, as its client reads them
        verify: bool | str = env("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
        if env("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            verify = False
        self.page_size = PAGE
        self.http = httpx.Client(
            base_url=uri.rstrip("/") + "/api/2.0/mlflow/",
            headers=headers,
            timeout=float(env("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")),
            verify=verify,
        )

    def model_names(self) -> list[str]:
        found = self._pages("registered-models/search", "registered_models", {})
        return sorted(m["name"] for m in found)

    def versions(self, model: str) -> list[StoredVersion]:
        found = self._pages(
            "model-versions/search", "model_versions", {"filter": f"name='{model}'"}
        )
        return sorted((_from_json(v) for v in found), key=lambda v: v.version)

    def by_run(self, run_id: str) -> list[StoredVersion]:
        found = self._pages(
            "model-versions/search", "model_versions", {"filter": f"run_id='{run_id}'"}
        )
        return [_from_json(v) for v in found]

    def version(self, model: str, number: int) -> StoredVersion | None:
        body = self._get("model-versions/get", {"name": model, "version": str(number)})
        return None if body is None else _from_json(body["model_version"])

    def alias(self, model: str, alias: str) -> int | None:
        body = self._get("registered-models/alias", {"name": model, "alias": alias})
        return None if body is None else int(body["model_version"]["version"])

    def run(self, run_id: str) -> StoredRun | None:
        body = self._get("runs/get", {"run_id": run_id})
        if body is None:
            return None
        run = body["run"]
        info, data = run["info"], run.get("data", {})
        experiment = self._get("experiments/get", {"experiment_id": info["experiment_id"]})
        inputs = run.get("inputs", {}).get("dataset_inputs", [])
        return StoredRun(
            run_id=info["run_id"],
            experiment=experiment["experiment"]["name"] if experiment else "",
            status=info["status"],
            params={p["key"]: p.get("value", "") for p in data.get("params", [])},
            metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
            tags={t["key"]: t.get("value", "") for t in data.get("tags", [])},
            datasets=datasets_in_order(
                StoredDataset(
                    d["name"], d["digest"], d["source_type"], d["source"], d.get("profile")
                )
                for d in (i["dataset"] for i in inputs)
            ),
        )

    def _pages(self, path: str, key: str, params: Mapping[str, str]) -> Iterator[Any]:
        token = None
        while True:
            query = {**params, "max_results": str(self.page_size)}
            if token:
                query["page_token"] = token
            body = self._get(path, query) or {}
            yield from body.get(key, [])
            token = body.get("next_page_token")
            if not token:
                return

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        return self.request("GET", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, str] | None = None,
        missing: tuple[str, ...] = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"),
    ) -> Any:
        """The answer's JSON to `method` on `path` (under /api/2.0/mlflow/); None when MLflow
        says the thing does not exist (an error code in `missing`). Raises StackError naming
        the call when the server fails or cannot be reached."""
        import httpx

        from stack.errors import StackError

        try:
            response = self.http.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise StackError(f"MLflow server {self.http.base_url}: {exc}{_hint(exc)}") from exc
        if response.status_code in (400, 404):
            code = _error_code(response)
            if code in missing:
                return None
        if response.is_error:
            raise StackError(
                f"MLflow server {response.request.url}: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        return response.json()


def _hint(exc: Exception) -> str:
    """What to do when the server's name does not resolve here (UNRESOLVABLE_HINT); '' for
    other failures."""
    import httpx

    if not isinstance(exc, httpx.ConnectError) or "name" not in str(exc).lower():
        return ""  # refused, reset, timed out: the server's address is right, it is not up
    return f" ({UNRESOLVABLE_HINT})"


def _error_code(response: Any) -> str | None:
    try:
        return str(response.json().get("error_code"))
    except ValueError:
        return None


def _from_json(version: Mapping[str, Any]) -> StoredVersion:
    return StoredVersion(
        name=version["name"],
        version=int(version["version"]),
        source=version.get("source") or "",
        run_id=version.get("run_id") or None,
        created_ms=int(version.get("creation_timestamp") or 0),
        tags={t["key"]: t.get("value", "") for t in version.get("tags", [])},
    )
