"""Two real model versions in the embedded MLflow store, as a recipe would register them."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.contract.registry import ModelVersion
from stack.plugins.manifest import AdapterContext

FEATURES = ["tenure", "monthly_spend", "support_calls", "late payments"]


@dataclass(frozen=True)
class Versions:
    champion: ModelVersion
    challenger: ModelVersion
    quirky: ModelVersion  # a pyfunc: fails on tenure >= 1000, takes 3 s on monthly_spend >= 1000


def register_versions(context: AdapterContext, model: str = "churn") -> Versions:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from stack_mlflow.config import MlflowRegistryConfig, MlflowTrackerConfig
    from stack_mlflow.registry import MlflowRegistry
    from stack_mlflow.tracker import MlflowTracker

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(400, 4)), columns=FEATURES)
    labels = (frame["tenure"] + frame["support_calls"] > 0).astype(int)
    tracker = MlflowTracker(MlflowTrackerConfig(), context)
    registry = MlflowRegistry(MlflowRegistryConfig(), context)
    run = tracker.start_run("serving-tests")
    refs = []
    for name, fitted, framework in [
        ("champion", LogisticRegression().fit(frame, labels), "sklearn"),
        ("challenger", LogisticRegression().fit(frame, 1 - labels), "sklearn"),  # disagrees
        ("quirky", _quirky(), "python"),
    ]:
        uri = tracker.log_model(
            run,
            fitted,
            name=name,
            framework=framework,
            requirements=["scikit-learn"],
            input_example=frame.head(3),
        )
        refs.append(registry.register(model, uri, run_id=run.run_id))
    tracker.finish_run(run)
    return Versions(*refs)


def _quirky() -> object:
    import mlflow.pyfunc

    class Quirky(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: object, model_input: Any, params: Any = None) -> Any:
            import time

            if (model_input["tenure"] >= 1000).any():
                raise RuntimeError("challenger crashed")
            if (model_input["monthly_spend"] >= 1000).any():
                time.sleep(3)
            return [0] * len(model_input)

    return Quirky()


def home(tmp: Path) -> AdapterContext:
    return AdapterContext(home=tmp / ".mlstack", base_dir=tmp)


@dataclass(frozen=True)
class Registered:
    """The versions of `register_versions`, registered once in `home` (a session's template):
    `copy_to` gives a stack its own copy instead of logging and registering them again."""

    home: Path
    versions: Versions

    def copy_to(self, context: AdapterContext) -> Versions:
        """The store copied into `context.home` (which must hold no MLflow store yet), every
        absolute path MLflow recorded in it (artifact locations) moved to the copy, so that a
        test writing to its copy never touches the template or another test's copy."""
        target = context.home
        if (target / "mlflow.db").exists():
            raise FileExistsError(f"{target} already holds an MLflow store")
        shutil.copytree(self.home, target, dirs_exist_ok=True)
        old, new = str(self.home.resolve()), str(target.resolve())
        with contextlib.closing(sqlite3.connect(target / "mlflow.db")) as db, db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for column in [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]:
                    db.execute(
                        f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                        f"""WHERE typeof("{column}") = 'text' AND instr("{column}", ?) > 0""",
                        (old, new, old),
                    )
        return self.versions
