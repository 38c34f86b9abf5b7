"""Save a model with its MLflow flavor into a folder, with explicit pip requirements."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from stack.errors import StackError

# framework name in mlstack -> MLflow flavor module
FLAVORS = {
    "sklearn": "mlflow.sklearn",
    "xgboost": "mlflow.xgboost",
    "lightgbm": "mlflow.lightgbm",
    "pytorch": "mlflow.pytorch",
    "tensorflow": "mlflow.tensorflow",
    "python": "mlflow.pyfunc",
}


def save_model(
    model: object,
    path: Path,
    *,
    framework: str,
    requirements: list[str],
    input_example: Any = None,
) -> None:
    """Write the model in MLflow's format. Requirements are never inferred: inference imports
    the model's code in a subprocess (seconds per model)."""
    flavor_module = FLAVORS.get(framework)
    if flavor_module is None:
        raise StackError(
            f"framework {framework!r} is not supported by the MLflow adapter; "
            f"use one of {', '.join(sorted(FLAVORS))}"
        )
    flavor = importlib.import_module(flavor_module)
    options: dict[str, Any] = {"pip_requirements": requirements}
    if input_example is not None:
        options["input_example"] = input_example
    if framework == "python":
        flavor.save_model(str(path), python_model=model, **options)
    else:
        flavor.save_model(model, str(path), **options)
