"""A LoggedModel whose MLmodel file carries a column signature and nothing to load: for tests of
gates and the registry, which read a version's signature but never load its model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml


def signed_logged_model(
    client: Any,
    run_id: str,
    name: str = "model",
    *,
    signed: bool = True,
    inputs: str | None = None,
) -> str:
    """`models:/m-…` of a new LoggedModel of `run_id` whose MLmodel has a one-column signature
    (or, with `signed=False`, none: as MLflow writes a model logged without an example; or
    `inputs`, the signature's inputs exactly as given)."""
    experiment = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment, source_run_id=run_id, name=name)
    with tempfile.TemporaryDirectory(prefix="mlstack-test-model-") as folder:
        signature = {
            "inputs": inputs or json.dumps([{"name": "x", "type": "double", "required": True}])
        }
        written = {"signature": signature} if signed else {"flavors": {}}
        (Path(folder) / "MLmodel").write_text(yaml.safe_dump(written))
        client.log_model_artifacts(logged.model_id, folder)
    return f"models:/{logged.model_id}"
