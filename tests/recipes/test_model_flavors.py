"""XGBoost, LightGBM, ONNX and a custom Python model written in a recipe: each logged by a
recipe step, gated, served by a real `bentoml serve`, answering as the model does in
process, refusing bad input, and monitored against its reference."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.contract.states import LifecycleState
from stack.session import StackSession
from tests.adapters.bentoml.conftest import free_port
from tests.recipes.conftest import STACK, endpoints_stopped
from tests.support.cli import MLSTACK, mlstack

# a pipeline selecting columns by name, with a transformer of the recipe's own: served as
# scikit-learn, it must be handed a frame, not the bare array plain estimators get
FLAVORS = ["xgboost", "lightgbm", "onnx", "python", "pipeline"]

RECIPE = """
name: flavors
model: {name: fraud-xgboost, owner: risk-ml}
promotion:
  gates:
    approved:
      thresholds: {accuracy: {min: 0.6}}
monitoring:
  window: 1h
  min_rows: 20
  policy: {max_drifted_share: 0.9}
steps:
  - name: train
    run: flavors:train
"""

STEPS = '''
"""Four model families on the same transactions, each registered as its own model."""
import json
from pathlib import Path

import lightgbm
import mlflow
import numpy as np
import pandas as pd
import xgboost
from skl2onnx import to_onnx
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stack.lifecycle import Lifecycle
from stack.monitoring import save_reference

COLUMNS = ["amount", "night", "velocity"]


class Rule(mlflow.pyfunc.PythonModel):
    """A hand-written rule, as risk teams keep them beside their models."""

    def predict(self, context, model_input, params=None):
        return ((model_input["amount"] > 2.5) & (model_input["night"] > 0.5)).astype(int).tolist()


class LogAmount(BaseEstimator, TransformerMixin):
    """A transformer of the team's own, reading its column by name."""

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return x.assign(amount=np.log1p(x["amount"]))


def pipeline():
    columns = ColumnTransformer(
        [("scaled", StandardScaler(), ["amount", "velocity"])], remainder="passthrough"
    )
    return make_pipeline(LogAmount(), columns, LogisticRegression())


def transactions(n, seed):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 1.0, n),
            "night": (rng.random(n) < 0.4).astype("float32"),
            "velocity": rng.normal(1.0, 0.3, n).astype("float32"),
        }
    )
    return x, ((x.amount > 2.5) & (x.night > 0.5)).astype(int)


def train(ctx):
    x, y = transactions(600, 3)
    probe, _ = transactions(8, 4)
    tracker = ctx.session.tracker
    onnx_input = x.astype("float32")  # ONNX Runtime takes float32: a narrow signature
    linear = LinearRegression().fit(onnx_input, y.astype("float32"))  # a risk score
    candidates = {
        "xgboost": (xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y), x),
        "lightgbm": (lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y), x),
        "onnx": (to_onnx(linear, onnx_input.head(1).to_numpy()), onnx_input),
        "python": (Rule(), x),
        "pipeline": (pipeline().fit(x, y), x),
    }
    decisions = {
        "xgboost": candidates["xgboost"][0].predict(x),
        "lightgbm": candidates["lightgbm"][0].predict(x),
        "onnx": linear.predict(onnx_input) > 0.5,
        "python": np.asarray(Rule().predict(None, x)),
        "pipeline": candidates["pipeline"][0].predict(x),
    }
    expected = {}
    for framework, (model, frame) in candidates.items():
        name = f"fraud-{framework}"
        run = tracker.start_run("flavors", name=framework)
        accuracy = float((decisions[framework] == y).mean())
        tracker.log_metrics(run, {"accuracy": accuracy})
        flavor = "sklearn" if framework == "pipeline" else framework
        uri = tracker.log_model(run, model, name=name, framework=flavor,
                                requirements=[], input_example=frame.head(5))
        save_reference(ctx.session, run.run_id, frame)
        tracker.finish_run(run)
        Lifecycle(ctx.session).register(name, uri, run_id=run.run_id, recipe=ctx.recipe)
        rows = probe.astype(frame.dtypes.to_dict())
        if framework == "python":
            answers = model.predict(None, rows)
        elif framework == "onnx":
            answers = linear.predict(rows).tolist()
        else:
            answers = model.predict(rows).tolist()
        expected[framework] = {"rows": rows.to_dict(orient="records"), "answers": answers}
    Path("expected.json").write_text(json.dumps(expected))
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The recipe run, each version approved and deployed on its own endpoint (in parallel)."""
    folder = tmp_path_factory.mktemp("flavors")
    (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
    recipe = folder / "recipe"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(RECIPE)
    (recipe / "flavors.py").write_text(STEPS)
    with endpoints_stopped(folder):
        run = mlstack("run", "recipe", cwd=folder, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        for flavor in FLAVORS:
            promote = mlstack("promote", f"fraud-{flavor}@1", "--to", "approved", cwd=folder)
            assert promote.returncode == 0, promote.stdout + promote.stderr
        deploys = {
            flavor: subprocess.Popen(
                [str(MLSTACK), "deploy", f"fraud-{flavor}@1", "--strategy", "direct"],
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for flavor in FLAVORS
        }
        for flavor, process in deploys.items():
            output, _ = process.communicate(timeout=600)
            assert process.returncode == 0, f"{flavor}: {output}"
        yield folder


def url_of(folder: Path, flavor: str) -> str:
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        return next(e.url for e in session.server.endpoints() if e.name == f"fraud-{flavor}")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_each_flavor_is_gated_served_and_monitored(served: Path, flavor: str) -> None:
    expected: dict[str, Any] = json.loads((served / "expected.json").read_text())[flavor]
    url = url_of(served, flavor)
    rows = expected["rows"]

    batch = httpx.post(f"{url}/predict", json=rows, timeout=60)
    assert batch.status_code == 200, batch.text
    answers = batch.json()["predictions"]
    if flavor == "onnx":  # ONNX Runtime answers {output name: value} per row, in float32
        scores = [next(iter(a.values())) for a in answers]
        flat = [s[0] if isinstance(s, list) else s for s in scores]
        assert flat == pytest.approx(expected["answers"], rel=1e-4, abs=1e-5)
    else:
        assert answers == expected["answers"]
    for row in rows * 3:  # enough traffic for a monitoring window
        assert httpx.post(f"{url}/predict", json=row, timeout=60).status_code == 200

    refused = httpx.post(f"{url}/predict", json={**rows[0], "amount": "a lot"}, timeout=60)
    assert refused.status_code == 422 and "amount" in refused.text

    with StackSession.open(served / "stack.yaml", base_dir=served) as session:
        version = session.registry.get_version(f"fraud-{flavor}", 1)
        assert version.state is LifecycleState.SERVING
        gates = session.spine.audit_entries(subject=version.ref, action="gate.passed")
        assert {g.payload["target"] for g in gates} == {"approved", "serving"}

    monitor = mlstack("monitor", "run", f"fraud-{flavor}", "--json", cwd=served)
    assert monitor.returncode in (0, 3), monitor.stdout + monitor.stderr
    check = json.loads(monitor.stdout.strip().splitlines()[-1])
    assert check["rows"] >= 20, check
