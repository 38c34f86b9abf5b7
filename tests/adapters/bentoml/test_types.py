"""Every column type a signature allows, served by `bentoml serve` as the signature says; values
a column cannot hold refused by name; a scikit-learn model logged with `predict_proba`
answering (and logging) class probabilities that monitoring compares as scores.

Two endpoints on one stack: a pyfunc that reports the frame it was given (dtype and value of
each column, per row), and a scikit-learn pipeline served natively."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stack.contract.serving import Endpoint, LoggedRequest
from stack.monitoring.columns import plan_columns, prediction_scores
from stack.session import StackSession
from tests.adapters.bentoml.conftest import STACK, free_port
from tests.support.fuzz import fuzz_predict

# column -> MLflow type; the `o…` columns are optional
TYPES = {
    "i32": "integer",
    "i64": "long",
    "f32": "float",
    "f64": "double",
    "flag": "boolean",
    "text": "string",
    "when": "datetime",
    "blob": "binary",
    "oi": "integer",
    "of": "float",
    "ob": "boolean",
}
OPTIONAL = {"oi", "of", "ob"}
RECORD: dict[str, Any] = {
    "i32": 7,
    "i64": 2**40,
    "f32": 2,  # an integer where a float belongs: taken
    "f64": 0.1,
    "flag": True,
    "text": "hi",
    "when": "2024-05-01T12:00:00+02:00",
    "blob": base64.b64encode(b"hello").decode(),
    "oi": 3,
    "of": 1.5,
    "ob": False,
}
PLANS = ["basic", "plus", "pro"]


@dataclass
class Served:
    folder: Any
    typed: Endpoint
    scored: Endpoint
    scorer: Any  # the fitted pipeline, to compare the endpoint's answers with

    def session(self) -> StackSession:
        return StackSession.open(self.folder / "stack.yaml", base_dir=self.folder)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("types")
    (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        typed_version, scored_version, scorer = _register(session)
        typed = session.server.deploy(typed_version, endpoint="typed-api")
        scored = session.server.deploy(scored_version, endpoint="scored-api")
    yield Served(folder, typed, scored, scorer)
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        for endpoint in session.server.endpoints():
            session.server.undeploy(endpoint.name)


def _register(session: StackSession) -> tuple[Any, Any, Any]:
    import cloudpickle
    import numpy as np
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the server cannot import tests
    tracker, registry = session.tracker, session.registry
    run = tracker.start_run("types")
    example = pd.DataFrame(
        {
            "i32": np.array([1, 2], dtype="int32"),
            "i64": [1, 2],
            "f32": np.array([1.5, 2.5], dtype="float32"),
            "f64": [1.5, 2.5],
            "flag": [True, False],
            "text": ["a", "b"],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "blob": [b"a", b"b"],
            "oi": np.array([1, 2], dtype="int32"),
            "of": np.array([1.5, 2.5], dtype="float32"),
            "ob": [True, False],
        }
    )
    signature = ModelSignature(
        inputs=Schema(
            [ColSpec(t, name, required=name not in OPTIONAL) for name, t in TYPES.items()]
        )
    )
    typed_uri = tracker.log_model(
        run,
        _frame_reporter(),
        name="typed",
        framework="python",
        requirements=["pandas"],
        input_example=example,
        signature=signature,
    )
    scorer, frame = _scorer()
    scored_uri = tracker.log_model(
        run,
        scorer,
        name="scored",
        framework="sklearn",
        requirements=["scikit-learn"],
        input_example=frame.head(3),
        pyfunc_predict_fn="predict_proba",  # MLflow's flavor option: the model answers scores
    )
    tracker.finish_run(run)
    typed = registry.register("typed", typed_uri, run_id=run.run_id)
    scored = registry.register("scored", scored_uri, run_id=run.run_id)
    return typed, scored, scorer


def _frame_reporter() -> object:
    import mlflow.pyfunc

    class FrameReporter(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """Answers, per row, `dtype:value` of each column it was given."""

        def predict(self, context: object, model_input: Any, params: Any = None) -> Any:
            return [
                {c: f"{model_input[c].dtype}:{model_input[c].iloc[i]}" for c in model_input}
                for i in range(len(model_input))
            ]

    return FrameReporter()


def _scorer() -> tuple[Any, Any]:
    """A churn classifier on an int32, a float32, a boolean and a string column."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 60, n).astype("int32"),
            "spend": rng.normal(50, 15, n).astype("float32"),
            "autopay": rng.random(n) < 0.5,
            "plan": rng.choice(PLANS, n),
        }
    )
    churned = (frame["tenure"] < 20) & ~frame["autopay"]
    encode = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    return make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame, churned), frame


def post(endpoint: Endpoint, body: Any) -> httpx.Response:
    return httpx.post(f"{endpoint.url}/predict", json=body, timeout=30)


# -- every type, framed as the signature says -------------------------------------------


def test_each_column_reaches_the_model_with_the_dtype_its_signature_names(
    served: Served,
) -> None:
    response = post(served.typed, RECORD)
    assert response.status_code == 200, response.text
    [seen] = response.json()["predictions"]
    assert seen == {
        "i32": "int32:7",
        "i64": f"int64:{2**40}",
        "f32": "float32:2.0",
        "f64": "float64:0.1",
        "flag": "bool:True",
        "text": "object:hi",
        "when": "datetime64[ns]:2024-05-01 10:00:00",  # the offset applied: naive UTC
        "blob": "object:b'hello'",  # base64 in the request, bytes for the model
        "oi": "int32:3",
        "of": "float32:1.5",
        "ob": "bool:False",
    }
    # a date alone is midnight
    dated = post(served.typed, {**RECORD, "when": "2024-05-01"})
    assert dated.json()["predictions"][0]["when"] == "datetime64[ns]:2024-05-01 00:00:00"


def test_optional_columns_may_be_null_or_left_out_within_one_batch(served: Served) -> None:
    required = {k: v for k, v in RECORD.items() if k not in OPTIONAL}
    batch = [
        {**required, "i32": 1, "oi": 10, "of": 0.5, "ob": True},
        {**required, "i32": 2, "oi": None, "of": None, "ob": None},
        {**required, "i32": 3},
        {**required, "i32": 4, "oi": 40},
    ]
    response = post(served.typed, batch)
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [row["i32"] for row in rows] == ["int32:1", "int32:2", "int32:3", "int32:4"]  # order
    # MLflow takes no missing value in an integer column, only the column left out
    assert [row.get("oi") for row in rows] == ["int32:10", None, None, "int32:40"]
    assert [row["of"] for row in rows] == [
        "float32:0.5",
        "float32:nan",
        "float32:nan",
        "float32:nan",
    ]
    assert rows[0]["ob"] == "object:True" and rows[1]["ob"] == "object:None"


BOUNDARIES = [
    {"i32": 2**31 - 1},
    {"i32": -(2**31)},
    {"i64": 2**63 - 1},
    {"i64": -(2**63)},
    {"f32": 3.4e38},
    {"f64": 1.7e308},
]


@pytest.mark.parametrize(
    "values", BOUNDARIES, ids=lambda v: f"{next(iter(v))}={next(iter(v.values()))}"
)
def test_the_widest_value_a_column_holds_is_taken(served: Served, values: dict[str, Any]) -> None:
    response = post(served.typed, {**RECORD, **values})
    assert response.status_code == 200, response.text


BEYOND = [
    (b'"i32": 2147483648', "i32"),
    (b'"i32": -2147483649', "i32"),
    (b'"i32": 2.5', "i32"),
    (b'"i64": 9223372036854775808', "i64"),
    (b'"i64": 1e3', "i64"),
    (b'"f32": 3.5e38', "f32"),
    (b'"f32": -1e39', "f32"),
    (b'"f64": 1e309', "f64"),
    (b'"oi": 4294967296', "oi"),
    (b'"when": "yesterday"', "when"),
    (b'"when": 1714557600', "when"),
    (b'"when": "0001-01-01"', "when"),  # beyond datetime64[ns], which would wrap it around
    (b'"blob": "not base64!"', "blob"),
    (b'"flag": 1', "flag"),
]


@pytest.mark.parametrize(("override", "field"), BEYOND, ids=lambda v: str(v))
def test_a_value_the_column_cannot_hold_gets_422_naming_the_field(
    served: Served, override: bytes, field: str
) -> None:
    others = b", ".join(json.dumps({k: v}).encode()[1:-1] for k, v in RECORD.items() if k != field)
    body = b"{" + override + b", " + others + b"}"
    json.loads(body)  # the body is JSON: only the value is wrong
    response = httpx.post(
        f"{served.typed.url}/predict",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["fields"]] == [field]
    in_a_batch = httpx.post(
        f"{served.typed.url}/predict",
        content=b"[" + json.dumps(RECORD).encode() + b", " + body + b"]",
        timeout=30,
    )
    assert in_a_batch.status_code == 422
    assert in_a_batch.json()["fields"] == [{**response.json()["fields"][0], "record": "1"}]


def test_the_openapi_schema_states_the_bounds(served: Served) -> None:
    document = httpx.get(f"{served.typed.url}/openapi.json", timeout=30).json()
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    properties = body["schema"]["oneOf"][0]["properties"]
    assert (properties["i32"]["minimum"], properties["i32"]["maximum"]) == (-(2**31), 2**31 - 1)
    assert properties["f32"]["maximum"] == pytest.approx(3.4028234663852886e38)
    assert properties["when"]["format"] == "date-time"


def test_no_generated_input_gets_a_server_error(served: Served) -> None:
    """Schemathesis, from the endpoint's own schema: values at every type's edges (and
    bodies that break it) get a 200 or a 4xx, never a 5xx."""
    seen = fuzz_predict(served.typed.url, max_examples=150)
    assert seen.get(200) and seen.get(422), f"both valid and invalid bodies were sent: {seen}"


def test_structured_columns_reach_the_model_as_mlflow_checks_them(tmp_path: Any) -> None:
    """Arrays, objects, maps and `any` (MLflow 3 signatures), in the serving runtime itself:
    validated to their element types, then handed to MLflow's enforcement typed as it checks
    them (an int32 element as int32)."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, Array, ColSpec, Map, Object, Property, Schema
    from pydantic import ValidationError

    from stack_bentoml.runtime import load_version
    from stack_bentoml.schema import RequestSchema, problems
    from stack_bentoml.spec import Column, VersionSpec

    signature = ModelSignature(
        inputs=Schema(
            [
                ColSpec(Array("integer"), "codes"),
                ColSpec(Object([Property("x", "float"), Property("y", "string", False)]), "at"),
                ColSpec(Map(Array("double")), "series"),
                ColSpec(AnyType(), "extra", required=False),
            ]
        )
    )
    mlflow.pyfunc.save_model(
        str(tmp_path / "model"),
        python_model=_frame_reporter(),
        signature=signature,
        pip_requirements=["pandas"],
    )
    columns = tuple(
        Column.from_signature(entry) for entry in json.loads(signature.inputs.to_json())
    )
    version = load_version(
        VersionSpec(
            ref="structured@1",
            model_tag="structured:v1",
            model_dir=str(tmp_path / "model"),
            flavor="pyfunc",
            inputs=columns,
        )
    )
    schema = RequestSchema(columns, max_rows=10)
    assert schema.unbounded  # `extra` takes any JSON: the endpoint counts how deep bodies nest
    assert not RequestSchema(columns[:3], max_rows=10).unbounded  # the signature bounds it
    record = {"codes": [1, 2], "at": {"x": 0.5}, "series": {"a": [1, 2.5]}}
    rows = schema.parse(json.dumps([record, {**record, "codes": [], "extra": {"k": [1]}}]).encode())
    first, second = version.predict(rows)
    assert first["codes"] == "object:[1, 2]"
    assert first["at"] == "object:{'x': np.float32(0.5)}"
    assert first["series"] == "object:{'a': [1.0, 2.5]}"
    assert second["codes"] == "object:[]" and second["extra"] == "object:{'k': [1]}"
    for bad, field in [
        ({**record, "codes": [1, 2**31]}, "codes.1"),
        ({**record, "at": {"x": 1e39}}, "at.x"),
        ({**record, "at": {"x": 1, "z": 2}}, "at.z"),
        ({**record, "series": {"a": ["1"]}}, "series.a.0"),
    ]:
        with pytest.raises(ValidationError) as refused:
            schema.parse(json.dumps(bad).encode())
        assert [p["field"] for p in problems(refused.value)] == [field]
    with pytest.raises(ValueError, match="'codes' is an array without its structure"):
        RequestSchema((Column(name="codes", type="array"),), max_rows=10)


# -- predict_proba ----------------------------------------------------------------------


def test_a_model_logged_with_predict_proba_answers_class_probabilities(served: Served) -> None:
    import pandas as pd

    records = [
        {"tenure": 3, "spend": 80.5, "autopay": False, "plan": "basic"},
        {"tenure": 50, "spend": 20.25, "autopay": True, "plan": "pro"},
        {"tenure": 10, "spend": 42.0, "autopay": True, "plan": "unheard-of"},
    ]
    response = post(served.scored, records)
    assert response.status_code == 200, response.text
    answered = response.json()["predictions"]
    frame = pd.DataFrame(records).astype({"tenure": "int32", "spend": "float32"})
    expected = served.scorer.predict_proba(frame).tolist()
    assert len(answered) == 3 and all(len(p) == 2 for p in answered)
    for got, want in zip(answered, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-12)
    assert answered[0][1] > 0.5 > answered[1][1]  # a short tenure without autopay churns


def test_the_log_keeps_the_probabilities_and_monitoring_compares_scores(served: Served) -> None:
    marker = f"scores-{time.time_ns()}"
    records = [
        {"tenure": t, "spend": 30.0 + t, "autopay": t % 2 == 0, "plan": PLANS[t % 3]}
        for t in range(0, 60, 3)
    ]
    for i, record in enumerate(records):
        response = httpx.post(
            f"{served.scored.url}/predict",
            json=record,
            headers={"x-request-id": f"{marker}-{i}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    logged = _wait_for_log(served, "scored-api", marker, len(records))
    outputs = [
        r.outputs[0] for r in sorted(logged, key=lambda r: int(r.request_id.rsplit("-")[-1]))
    ]
    assert all(isinstance(o, list) and len(o) == 2 for o in outputs)
    scores = prediction_scores(outputs)
    assert scores == [o[1] for o in outputs]  # the positive class's probability
    # the training reference holds the same scores (saved as floats, or as lists): comparable
    reference = {"prediction": [0.1, 0.7, 0.4]}
    assert plan_columns(reference, {"prediction": scores}, ["prediction"]).usable == ["prediction"]
    as_lists = {"prediction": prediction_scores([[0.9, 0.1], [0.3, 0.7]])}
    assert plan_columns(as_lists, {"prediction": scores}, ["prediction"]).usable == ["prediction"]


def _wait_for_log(served: Served, endpoint: str, marker: str, count: int) -> list[LoggedRequest]:
    """The log is written off the request path (every 0.2 s here): wait until it holds them."""
    deadline = time.monotonic() + 30
    with served.session() as session:
        while True:
            logged = [r for r in session.server.logged(endpoint) if r.request_id.startswith(marker)]
            if len(logged) >= count or time.monotonic() > deadline:
                return logged
            time.sleep(0.2)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            b'{"f": 3.5e38, "i": 1}',
            "Input should be less than or equal to 3.40282347e+38 (float32's largest)",
        ),
        (
            b'{"f": -1e39, "i": 1}',
            "Input should be greater than or equal to -3.40282347e+38 (float32's lowest)",
        ),
        (b'{"f": 1.0, "i": 2147483648}', "Input should be less than or equal to 2147483647"),
    ],
)
def test_a_bound_is_written_as_a_number_is_read(body: bytes, problem: str) -> None:
    """Pydantic writes a float bound digit by digit (float32's largest as 39 digits): the
    client reads it as a number is written."""
    from pydantic import ValidationError

    from stack_bentoml.schema import RequestSchema, problems
    from stack_bentoml.spec import Column

    schema = RequestSchema((Column(name="f", type="float"), Column(name="i", type="integer")), 10)
    with pytest.raises(ValidationError) as raised:
        schema.parse(body)
    assert [p["problem"] for p in problems(raised.value)] == [problem]
