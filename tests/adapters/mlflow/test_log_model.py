"""log_model with the models users bring: every scikit-learn predictor, tree ensembles, pipelines
with their own transformers, custom Python models written in a recipe, XGBoost, LightGBM and
ONNX; and the models that cannot be served, refused at log time with the cause."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from textwrap import dedent
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from stack.config.recipe_file import load_recipe
from stack.orchestration.steps import load_steps
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowTrackerConfig
from stack_mlflow.models import ModelNotServable
from stack_mlflow.tracker import MlflowTracker

COLUMNS = ["amount", "night", "age", "visits"]


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(5)
    x = pd.DataFrame(rng.gamma(2.0, 1.0, size=(120, 4)), columns=COLUMNS)
    return x, ((x.amount > 2) & (x.night > 1.5)).astype(int)


@pytest.fixture
def tracker(sqlite_uri: str, context: AdapterContext) -> MlflowTracker:
    return MlflowTracker(MlflowTrackerConfig(tracking_uri=sqlite_uri), context)


def log(tracker: MlflowTracker, model: object, example: Any, **options: Any) -> str:
    run = tracker.start_run(f"log-model-{uuid.uuid4().hex[:6]}")
    try:
        return tracker.log_model(
            run,
            model,
            name="m",
            framework=options.pop("framework", "sklearn"),
            requirements=["scikit-learn"],
            input_example=example,
            **options,
        )
    finally:
        tracker.finish_run(run)


def mlmodel(tracker: MlflowTracker, uri: str) -> dict[str, Any]:
    client = MlflowClient(tracker.uri)
    location = client.get_logged_model(uri.removeprefix("models:/")).artifact_location
    path = Path(location.removeprefix("file://")) / "MLmodel"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def predict_elsewhere(
    tracker: MlflowTracker, models: dict[str, pd.DataFrame], cwd: Path
) -> list[str]:
    """Load each logged model in one new interpreter started in another folder (as a server
    is, with none of this process's imports) and predict its rows; the answers as text."""
    client = MlflowClient(tracker.uri)
    jobs = [
        (
            client.get_logged_model(uri[len("models:/") :]).artifact_location,
            rows.to_json(orient="split"),
            rows.dtypes.astype(str).to_dict(),
        )
        for uri, rows in models.items()
    ]
    script = (
        "import io, json, sys, pandas as pd, mlflow.pyfunc\n"
        "for location, rows, dtypes in json.load(sys.stdin):\n"
        "    frame = pd.read_json(io.StringIO(rows), orient='split').astype(dtypes)\n"
        "    answer = mlflow.pyfunc.load_model(location).predict(frame)\n"
        "    print(list(answer) if not hasattr(answer, 'columns') else answer.to_dict('list'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(jobs),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()


# -- every scikit-learn predictor -------------------------------------------------------------


def fitted_predictors(x: pd.DataFrame, y: pd.Series) -> list[tuple[str, Any]]:
    """Every estimator of `all_estimators()` that builds with its defaults, fits this small
    dataset and predicts (transformers serve inside a Pipeline ending in a predictor)."""
    from sklearn.utils import all_estimators

    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in all_estimators():
            if not hasattr(cls, "predict"):  # transformers: served within a Pipeline
                continue
            try:
                estimator = cls()
                estimator.fit(x, y)
            except Exception:
                try:
                    estimator.fit(x)
                except Exception:
                    continue
            if hasattr(estimator, "predict"):
                found.append((name, estimator))
    return found


def test_every_scikit_learn_predictor_is_stored_in_a_format_that_loads_back(
    frame: tuple[pd.DataFrame, pd.Series],
) -> None:
    """The format choice (skops, trusted types derived from the model) for each predictor;
    MLflow's sklearn flavor around it is the same for all, and is exercised below."""
    import skops.io

    from stack_mlflow.models import _sklearn_format

    x, y = frame
    predictors = fitted_predictors(x, y)
    assert len(predictors) > 80  # the whole catalogue, not a hand-picked few
    failures = []
    for name, estimator in predictors:
        chosen = _sklearn_format(estimator, "skops", {}, set())
        try:
            if chosen["serialization_format"] == "skops":
                data = skops.io.dumps(estimator)
                loaded = skops.io.loads(data, trusted=chosen["skops_trusted_types"])
            else:
                import cloudpickle

                loaded = cloudpickle.loads(cloudpickle.dumps(estimator))
            np.testing.assert_array_equal(loaded.predict(x.head(5)), estimator.predict(x.head(5)))
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


def test_tree_ensembles_log_in_skops_with_their_types_recorded_and_load_elsewhere(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier

    x, y = frame
    models = [
        RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y),
        HistGradientBoostingClassifier(max_iter=5).fit(x, y),
        KNeighborsClassifier().fit(x, y),
    ]
    uris = [log(tracker, model, x.head(3)) for model in models]
    flavors = [mlmodel(tracker, uri)["flavors"]["sklearn"] for uri in uris]
    assert [f["serialization_format"] for f in flavors] == ["skops"] * 3
    assert "sklearn.tree._tree.Tree" in flavors[0]["skops_trusted_types"]
    answers = predict_elsewhere(tracker, dict.fromkeys(uris, x.head(4)), tmp_path)
    assert answers == [str(list(model.predict(x.head(4)))) for model in models]


# -- user code: a recipe's own transformer and model classes ---------------------------------

STEPS = '''
import mlflow
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from helpers import scale  # a neighbour module of the recipe, imported by its plain name


class LogAmount(BaseEstimator, TransformerMixin):
    """A user-written transformer."""

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        out = x.copy()
        out["amount"] = np.log1p(out["amount"]) * scale()
        return out


class Priority(mlflow.pyfunc.PythonModel):
    """A hand-written rule as a custom model."""

    def predict(self, context, model_input, params=None):
        return ((model_input["amount"] * scale() > 4) | (model_input["night"] >= 3)).astype(int)


def pipeline():
    return make_pipeline(LogAmount(), LogisticRegression())


def noop():
    return None
'''


@pytest.fixture(scope="module")
def recipe_module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The step module of a recipe, imported the way `mlstack run` imports it."""
    folder = tmp_path_factory.mktemp("user-code-recipe")
    (folder / "recipe.yaml").write_text(
        "name: user-code\nsteps:\n  - {name: a, run: 'steps:noop'}\n"
    )
    (folder / "steps.py").write_text(STEPS)
    (folder / "helpers.py").write_text("def scale():\n    return 2.0\n")
    step = load_steps(load_recipe(folder))["a"]
    return sys.modules[step.function.__module__]


def test_a_pipeline_with_a_transformer_written_in_the_recipe_logs_and_serves_elsewhere(
    tracker: MlflowTracker,
    frame: tuple[pd.DataFrame, pd.Series],
    recipe_module: Any,
    tmp_path: Path,
) -> None:
    x, y = frame
    model = recipe_module.pipeline().fit(x, y)
    uri = log(tracker, model, x.head(3))
    # skops stores classes by name and the recipe's module is not importable where the model
    # is served: the model is stored with cloudpickle, the recipe's code inside it
    assert mlmodel(tracker, uri)["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert predict_elsewhere(tracker, {uri: x.head(4)}, tmp_path) == [
        str(list(model.predict(x.head(4))))
    ]


def test_a_custom_python_model_written_in_the_recipe_logs_and_serves_elsewhere(
    tracker: MlflowTracker,
    frame: tuple[pd.DataFrame, pd.Series],
    recipe_module: Any,
    tmp_path: Path,
) -> None:
    x, _ = frame
    model = recipe_module.Priority()
    uri = log(tracker, model, x.head(3), framework="python")
    expected = str(list(model.predict(None, x.head(6))))
    assert predict_elsewhere(tracker, {uri: x.head(6)}, tmp_path) == [expected]


def test_cloudpickle_for_every_sklearn_model_when_the_stack_says_so(
    sqlite_uri: str, context: AdapterContext, frame: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.tree import DecisionTreeClassifier

    tracker = MlflowTracker(
        MlflowTrackerConfig(tracking_uri=sqlite_uri, serialization="cloudpickle"), context
    )
    x, y = frame
    uri = log(tracker, DecisionTreeClassifier(max_depth=2).fit(x, y), x.head(3))
    assert mlmodel(tracker, uri)["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"


def test_the_flavors_own_options_pass_through(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y = frame
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    uri = log(
        tracker,
        model,
        x.head(3),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    written = mlmodel(tracker, uri)
    assert written["flavors"]["python_function"]["predict_fn"] == "predict_proba"
    assert written["flavors"]["sklearn"]["skops_trusted_types"] == ["sklearn.tree._tree.Tree"]
    [scores] = predict_elsewhere(tracker, {uri: x.head(2)}, tmp_path)
    assert scores == str(list(model.predict_proba(x.head(2))))


# -- the other flavors ------------------------------------------------------------------------


def test_xgboost_lightgbm_and_onnx_models_log_and_serve_elsewhere(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    import lightgbm
    import xgboost
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    x, y = frame
    booster = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    gbm = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    linear = LinearRegression().fit(x.astype("float32"), x.amount * 2)
    onnx_model = to_onnx(linear, x.head(1).to_numpy(dtype="float32"))
    narrow = x.astype("float32")
    uris = [
        log(tracker, booster, x.head(3), framework="xgboost"),
        log(tracker, gbm, x.head(3), framework="lightgbm"),
        log(tracker, onnx_model, narrow.head(3), framework="onnx"),
    ]
    assert "xgboost" in mlmodel(tracker, uris[0])["flavors"]
    assert mlmodel(tracker, uris[1])["flavors"]["lightgbm"]["serialization_format"] == "skops"
    assert "onnx" in mlmodel(tracker, uris[2])["flavors"]
    answers = predict_elsewhere(
        tracker, {uris[0]: x.head(4), uris[1]: x.head(4), uris[2]: narrow.head(4)}, tmp_path
    )
    assert answers[:2] == [str(list(booster.predict(x.head(4)))), str(list(gbm.predict(x.head(4))))]
    onnx_answer = yaml.safe_load(answers[2])  # {output name: values}
    [values] = onnx_answer.values()
    np.testing.assert_allclose(np.ravel(values), linear.predict(narrow.head(4)), rtol=1e-4)


# -- what cannot be served is refused at log time, and nothing is stored --------------------


def test_a_model_that_cannot_load_where_it_is_served_is_refused_naming_the_module(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series], recipe_module: Any
) -> None:
    x, _ = frame
    missing = f"not_installed_{uuid.uuid4().hex[:6]}"
    module = recipe_module.__name__
    source = dedent(f"""
        import mlflow

        class NeedsAPackage(mlflow.pyfunc.PythonModel):
            def load_context(self, context):
                import {missing}

            def predict(self, context, model_input, params=None):
                return [0] * len(model_input)
        """)
    exec(compile(source, recipe_module.__file__, "exec"), recipe_module.__dict__)
    experiments = tracker.client.search_experiments()
    before = sum(len(tracker.client.search_logged_models([e.experiment_id])) for e in experiments)
    with pytest.raises(ModelNotServable) as caught:
        log(tracker, recipe_module.NeedsAPackage(), x.head(3), framework="python")
    message = str(caught.value)
    assert f"No module named '{missing}'" in message
    assert f"module {missing!r}" in message and "code_paths" in message
    assert module not in message  # the recipe's own module travelled with the model
    after = sum(
        len(tracker.client.search_logged_models([e.experiment_id]))
        for e in tracker.client.search_experiments()
    )
    assert after == before  # no LoggedModel half-created


def test_an_example_with_missing_integers_is_refused_naming_the_column(
    tracker: MlflowTracker,
) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    example = pd.DataFrame(
        {"visits": pd.array([3, None, 5, 1], dtype="Int64"), "spend": [12.0, 3.5, 40.0, 8.25]}
    )
    model = HistGradientBoostingRegressor(max_iter=3).fit(example.astype("float64"), [1, 2, 3, 4])
    with pytest.raises(ModelNotServable, match=r"check: 'visits' \(Int64.*cast it to float64"):
        log(tracker, model, example)


def test_an_example_with_a_category_column_is_told_to_send_strings(
    tracker: MlflowTracker,
) -> None:
    from sklearn.dummy import DummyClassifier

    example = pd.DataFrame(
        {"purpose": pd.Categorical(["car", "home", "car"]), "income": [1.0, 2.0, 3.0]}
    )
    model = DummyClassifier().fit(example, [0, 1, 0])
    with pytest.raises(ModelNotServable) as caught:
        log(tracker, model, example)
    message = str(caught.value)
    assert "'purpose' (category" in message and "give it as str in the input example" in message
    assert "float64" not in message  # not the advice for integer columns


def test_no_example_and_no_signature_is_refused(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = frame
    with pytest.raises(ModelNotServable, match="give log_model an input_example"):
        log(tracker, LogisticRegression().fit(x, y), None)


def test_a_transformer_alone_is_refused_as_it_cannot_answer_requests(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.preprocessing import StandardScaler

    x, _ = frame
    with pytest.raises(ModelNotServable, match="python_function"):
        log(tracker, StandardScaler().fit(x), x.head(3))


def test_an_option_the_flavor_does_not_take_is_refused_naming_it(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series]
) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = frame
    with pytest.raises(ModelNotServable, match="n_trees"):
        log(tracker, LogisticRegression().fit(x, y), x.head(3), n_trees=3)


def test_a_model_that_cannot_be_pickled_is_refused_naming_the_cause(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series], recipe_module: Any
) -> None:
    import threading

    x, _ = frame
    model = recipe_module.Priority()
    model.lock = threading.Lock()  # a model holding a lock (a client, a connection…)
    with pytest.raises(ModelNotServable, match=r"could not save it: .*lock"):
        log(tracker, model, x.head(3), framework="python")


def test_the_checking_process_killed_between_models_is_started_again(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series]
) -> None:
    import os
    import signal

    from sklearn.linear_model import LogisticRegression

    from stack_mlflow import servable

    x, y = frame
    model = LogisticRegression().fit(x, y)
    log(tracker, model, x.head(3))
    checker = servable._CHECKER._process
    assert checker is not None and checker.poll() is None
    os.kill(checker.pid, signal.SIGKILL)
    checker.wait()
    assert log(tracker, model, x.head(3)).startswith("models:/")


CHECKED_MODELS = '''
import os, time
import mlflow


class Slow(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep(4)
        return [0] * len(model_input)


class Forks(mlflow.pyfunc.PythonModel):
    """Starts a helper process that outlives loading (a pool, a server of its own)."""

    def load_context(self, context):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        with open(os.environ["FORKED_PID_FILE"], "w") as out:
            out.write(str(pid))

    def predict(self, context, model_input, params=None):
        return [0] * len(model_input)


class Broken(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        raise RuntimeError("cannot load")

    def predict(self, context, model_input, params=None):
        return [0] * len(model_input)
'''


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("checked-models")
    (folder / "recipe.yaml").write_text("name: checked\nsteps:\n- {name: a, run: 'models:Slow'}\n")
    (folder / "models.py").write_text(CHECKED_MODELS)
    load_steps(load_recipe(folder))
    return next(m for n, m in sys.modules.items() if n.endswith("__models"))


def test_an_interrupted_check_does_not_answer_for_the_next_model(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series], checked: Any
) -> None:
    """Ctrl-C (or a timeout signal) while the checker works on one model: the next models get
    their own verdicts, not the interrupted one's."""
    import signal

    x, y = frame

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            log(tracker, checked.Slow(), x.head(2), framework="python")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(ModelNotServable, match="cannot load"):
        log(tracker, checked.Broken(), x.head(2), framework="python")
    from sklearn.linear_model import LogisticRegression

    assert log(tracker, LogisticRegression().fit(x, y), x.head(2)).startswith("models:/")


def test_a_model_whose_loading_forks_a_helper_is_not_waited_for(
    tracker: MlflowTracker,
    frame: tuple[pd.DataFrame, pd.Series],
    checked: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import signal

    pid_file = tmp_path / "forked.pid"
    monkeypatch.setenv("FORKED_PID_FILE", str(pid_file))
    from stack_mlflow import servable

    servable._CHECKER.close()  # a checker started with the environment above
    x, _ = frame
    log(tracker, checked.Forks(), x.head(2), framework="python")
    forked = int(pid_file.read_text())
    try:
        os.kill(forked, 0)  # still alive: log_model returned without waiting for it
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(forked, signal.SIGKILL)
        servable._CHECKER.close()


def test_explicit_skops_for_a_model_holding_recipe_code_is_refused_not_switched(
    tracker: MlflowTracker, frame: tuple[pd.DataFrame, pd.Series], recipe_module: Any
) -> None:
    x, y = frame
    model = recipe_module.pipeline().fit(x, y)
    with pytest.raises(ModelNotServable, match=r"serialization_format='skops' was asked for.*"):
        log(tracker, model, x.head(3), serialization_format="skops")


def test_a_scripts_own_transformer_logs_and_serves(tmp_path: Path, sqlite_uri: str) -> None:
    """Classes of a script (or a notebook) live in __main__, which no server can import."""
    script = tmp_path / "train.py"
    script.write_text(
        dedent(f"""
        import numpy as np, pandas as pd
        from sklearn.base import BaseEstimator, TransformerMixin
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from stack.plugins.manifest import AdapterContext
        from pathlib import Path
        from stack_mlflow.config import MlflowTrackerConfig
        from stack_mlflow.tracker import MlflowTracker

        class Doubler(BaseEstimator, TransformerMixin):
            def fit(self, x, y=None):
                return self
            def transform(self, x):
                return x * 2

        x = pd.DataFrame({{"a": np.arange(20.0), "b": np.arange(20.0) % 3}})
        model = make_pipeline(Doubler(), LogisticRegression()).fit(x, (x.a > 9).astype(int))
        context = AdapterContext(home=Path(".mlstack"), base_dir=Path("."))
        tracker = MlflowTracker(MlflowTrackerConfig(tracking_uri={sqlite_uri!r}), context)
        run = tracker.start_run("script")
        print(tracker.log_model(run, model, name="s", framework="sklearn",
                                requirements=["scikit-learn"], input_example=x.head(3)))
        tracker.finish_run(run)
        """)
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("models:/")
