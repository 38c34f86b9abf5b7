"""No input gets a 5xx from a served endpoint (issue 18, item 1).

One `bentoml serve` answers every case here: a scikit-learn pipeline (a check of its own, a
scaler, a logistic regression) served natively. Its scaler overflows float64 on large
values in `monthly_spend` (a column with a small spread), and its check raises on
`support_calls == 13` — a valid input no validator can foresee.

What a client must see: a number the model cannot take is refused with 422 naming the
field (the bounds were found by asking the model when it loaded, and the OpenAPI schema
states them); JSON nested too deep is refused at once on every route; a body that is not
`application/json` gets 415; a model that fails on valid input answers 500 with the request
id and none of its internal text (the traceback goes to the server log and the prediction
log); hostile bodies get a 4xx; schemathesis finds no 5xx on any route."""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.contract.serving import Endpoint
from stack.session import StackSession
from stack_bentoml.predictlog import read_log
from tests.adapters.bentoml.conftest import STACK, free_port, row
from tests.adapters.bentoml.models import FEATURES
from tests.support.fuzz import fuzz_endpoint

UNLUCKY = 13.0  # support_calls: the model's own check refuses it
SECRET = "internal detail /srv/models/secret.py"


@dataclass
class Guarded:
    folder: Path
    endpoint: Endpoint

    @property
    def url(self) -> str:
        return self.endpoint.url


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        endpoint = session.server.deploy(_register(session), endpoint="guarded")
    yield Guarded(folder, endpoint)
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        for served in session.server.endpoints():
            session.server.undeploy(served.name)


def _refuse_unlucky(x: Any) -> Any:
    import numpy as np

    values = np.asarray(x, dtype=float)
    if (values[:, 2] == UNLUCKY).any():
        raise ValueError(f"{SECRET}: support_calls == 13 is not supported")
    return values


def _register(session: StackSession) -> Any:
    import cloudpickle
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the server cannot import tests
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(400, 4)), columns=FEATURES)
    frame["monthly_spend"] *= 0.01  # a small spread: scaling 1e307 overflows float64
    labels = (frame["tenure"] + frame["support_calls"] > 0).astype(int)
    model = make_pipeline(
        FunctionTransformer(_refuse_unlucky), StandardScaler(), LogisticRegression()
    ).fit(frame, labels)
    run = session.tracker.start_run("hostile")
    uri = session.tracker.log_model(
        run,
        model,
        name="guarded",
        framework="sklearn",
        requirements=["scikit-learn"],
        input_example=frame.head(3),
    )
    session.tracker.finish_run(run)
    return session.registry.register("guarded", uri, run_id=run.run_id)


def post(
    guarded: Guarded,
    body: bytes,
    *,
    path: str = "/predict",
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if content_type is not None:
        sent["content-type"] = content_type
    return httpx.post(f"{guarded.url}{path}", content=body, headers=sent, timeout=20)


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def feedback_body() -> bytes:
    return as_json({"request_id": "r-1", "label": 1})


# -- numbers the model cannot take --------------------------------------------------------


def test_a_finite_number_the_model_cannot_take_gets_422_naming_the_field(
    guarded: Guarded,
) -> None:
    response = post(guarded, as_json(row(monthly_spend=1e308)))
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["fields"]] == ["monthly_spend"]
    batch = post(guarded, as_json([row(), row(monthly_spend=-1e308), row()]))
    assert batch.status_code == 422, batch.text
    assert [(p["field"], p["record"]) for p in batch.json()["fields"]] == [("monthly_spend", "1")]


def test_the_openapi_schema_states_what_the_model_takes_and_the_bound_is_answered(
    guarded: Guarded,
) -> None:
    document = httpx.get(f"{guarded.url}/openapi.json", timeout=20).json()
    schema = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    spend = schema["schema"]["oneOf"][0]["properties"]["monthly_spend"]
    assert 1e300 <= spend["maximum"] < 1e308 and -1e308 < spend["minimum"] <= -1e300
    at_the_bounds = [row(monthly_spend=spend["maximum"]), row(monthly_spend=spend["minimum"])]
    response = post(guarded, as_json(at_the_bounds))
    assert response.status_code == 200, response.text


# -- depth, size and content type, on every route -----------------------------------------


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_json_nested_1000_deep_is_refused_at_once(guarded: Guarded, path: str) -> None:
    deep = b"[" * 1000 + b"]" * 1000
    in_a_field = b'{"request_id": "r-1", "label": ' + deep + b"}"
    for body in (deep, in_a_field):
        response = post(guarded, body, path=path)  # no answer in 20 s fails the test
        assert response.status_code == 422, response.text
        assert "recursion limit exceeded" in response.text


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_a_body_over_the_limit_gets_413(guarded: Guarded, path: str) -> None:
    response = post(guarded, b" " * 2_000_000, path=path)
    assert response.status_code == 413, response.text


WRONG_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/json; charset=latin-1",
]


@pytest.mark.parametrize("content_type", WRONG_TYPES)
@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_a_valid_body_sent_as_another_content_type_gets_415(
    guarded: Guarded, path: str, content_type: str
) -> None:
    body = as_json(row()) if path == "/predict" else feedback_body()
    response = post(guarded, body, path=path, content_type=content_type)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]


def test_a_compressed_body_gets_415(guarded: Guarded) -> None:
    response = post(guarded, gzip.compress(as_json(row())), headers={"content-encoding": "gzip"})
    assert response.status_code == 415, response.text


@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", None])
def test_json_with_its_charset_or_without_a_content_type_is_answered(
    guarded: Guarded, content_type: str | None
) -> None:
    response = post(guarded, as_json(row()), content_type=content_type)
    assert response.status_code == 200, response.text


# -- a model that fails on valid input ----------------------------------------------------


def test_a_model_failing_on_valid_input_answers_500_with_the_request_id_and_no_internal_text(
    guarded: Guarded,
) -> None:
    request_id = f"unlucky-{time.time_ns()}"
    response = post(
        guarded, as_json(row(support_calls=UNLUCKY)), headers={"x-request-id": request_id}
    )
    assert response.status_code == 500
    assert response.headers["x-request-id"] == request_id
    assert response.json()["request_id"] == request_id
    assert "secret" not in response.text and "ValueError" not in response.text
    logged = _wait(lambda: _logged(guarded, request_id), "the prediction log row")
    assert logged["status"] == 500
    assert "Traceback" in logged["error"] and SECRET in logged["error"]
    server_log = guarded.folder / ".mlstack" / "serving" / "guarded" / "server.log"
    _wait(lambda: request_id in server_log.read_text(), "the server log line")
    assert SECRET in server_log.read_text()
    # the same record in a batch fails the batch alike; the others answer
    assert post(guarded, as_json([row(), row(support_calls=UNLUCKY)])).status_code == 500
    assert post(guarded, as_json(row())).status_code == 200


def test_a_model_error_echoing_what_no_log_can_store_is_stored(tmp_path: Path) -> None:
    """A message may echo a request's lone surrogate (parquet refuses it) or NUL (PostgreSQL
    does): written as escapes, or the whole batch of rows it was flushed with is lost."""
    from stack_bentoml.app import failure_text
    from stack_bentoml.predictlog import ParquetSink, Prediction

    try:
        raise ValueError("cannot take 'a\ud800b\x00c'")
    except ValueError as exc:
        error = failure_text(exc)
    entry = Prediction("r-1", time.time(), "e", "m@1", "live", 500, 1.0, "[]", None, error)
    ParquetSink(tmp_path).write([entry])
    [stored] = read_log(tmp_path).to_pylist()
    assert "cannot take 'a\\ud800b\\x00c'" in stored["error"]
    assert "Traceback" in stored["error"]


def _logged(guarded: Guarded, request_id: str) -> dict[str, Any] | None:
    rows = read_log(guarded.folder / ".mlstack" / "predictions" / "guarded").to_pylist()
    return next((r for r in rows if r["request_id"] == request_id), None)


def _wait(probe: Any, what: str) -> Any:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} never came")


# -- hostile bodies -------------------------------------------------------------------------


def _record_with(column: str, raw: bytes) -> bytes:
    others = b", ".join(as_json({k: v})[1:-1] for k, v in row().items() if k != column)
    return b'{"' + column.encode() + b'": ' + raw + b", " + others + b"}"


HOSTILE: list[tuple[str, str, bytes]] = [
    ("a 5000-digit integer", "/predict", _record_with("tenure", b"9" * 5000)),
    ("an exponent beyond float64", "/predict", _record_with("tenure", b"1e999999")),
    ("a negative zero and a denormal", "/predict", _record_with("tenure", b"-0.0e-400")),
    ("invalid UTF-8", "/predict", b'{"tenure": "\xff\xfe"}'),
    ("a UTF-16 body", "/predict", as_json(row()).decode().encode("utf-16")),
    ("truncated JSON", "/predict", as_json(row())[:-3]),
    ("duplicate keys", "/predict", _record_with("tenure", b'1, "tenure": "x"')),
    ("a string of 900 kB", "/predict", _record_with("tenure", b'"' + b"a" * 900_000 + b'"')),
    ("100,000 open brackets", "/predict", b"[" * 100_000),
    ("brackets in a string, then deep", "/predict", b'["[[[[", ' + b"{" * 200),
    ("1001 records", "/predict", as_json([row()] * 1001)),
    ("a record of 10,000 unknown fields", "/predict", as_json({f"c{i}": 1 for i in range(10_000)})),
    ("a lone surrogate label", "/feedback", b'{"request_id": "r", "label": "\\udfff"}'),
    ("a 5000-digit label", "/feedback", b'{"request_id": "r", "label": ' + b"9" * 5000 + b"}"),
    ("a label of 1e999", "/feedback", b'{"request_id": "r", "label": 1e999}'),
    ("a UTF-16 label", "/feedback", feedback_body().decode().encode("utf-16")),
    ("an empty list", "/feedback", b"[]"),
    ("whitespace only", "/feedback", b" \n\t "),
    ("a row of 10**30", "/feedback", b'{"request_id": "r", "label": 1, "row": ' + b"1" * 31 + b"}"),
]


@pytest.mark.parametrize(
    ("path", "body"), [(p, b) for _, p, b in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_a_hostile_body_gets_an_answer_below_500(guarded: Guarded, path: str, body: bytes) -> None:
    response = post(guarded, body, path=path)
    assert response.status_code < 500, response.text
    assert post(guarded, as_json(row())).status_code == 200  # the worker is still there


@pytest.mark.parametrize(
    ("request_id", "refused"),
    [
        ("\\ud800", "the body is not JSON"),  # a lone surrogate: the parser refuses it
        ("a\\u0000b", "request_id"),
        ("caf\\u00e9", "request_id"),
    ],
)
def test_feedback_for_a_request_id_the_endpoint_never_issues_is_refused_and_loses_nothing(
    guarded: Guarded, request_id: str, refused: str
) -> None:
    """Request ids are printable ASCII; a lone surrogate cannot be written to parquet and
    a NUL not to PostgreSQL: accepted, either would lose the whole batch it was logged in."""
    body = b'{"request_id": "' + request_id.encode() + b'", "label": 1}'
    answer = post(guarded, body, path="/feedback")
    assert answer.status_code == 422, answer.text
    said = [p["field"] for p in answer.json().get("fields", [])] or [answer.json()["error"]]
    assert said[0].startswith(refused), said
    kept = f"kept-{time.time_ns()}"
    sent = post(guarded, as_json({"request_id": kept, "label": 1}), path="/feedback")
    assert sent.status_code == 202
    _wait(lambda: _logged(guarded, kept), "the label sent beside it")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("OPTIONS", "/predict", 405),
        ("DELETE", "/feedback", 405),
        ("PUT", "/endpoint", 404),
        ("GET", "/nowhere", 404),
        ("GET", "/openapi.json?format=yaml", 200),
        ("GET", "/endpoint", 200),
    ],
)
def test_other_methods_and_routes_get_their_answer(
    guarded: Guarded, method: str, path: str, status: int
) -> None:
    response = httpx.request(method, f"{guarded.url}{path}", content=b"{}", timeout=20)
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]


# -- generated requests on every route ----------------------------------------------------


def test_no_generated_request_on_any_route_gets_a_server_error(guarded: Guarded) -> None:
    """Schemathesis from the endpoint's own schema, every operation in positive and negative
    mode, then stateful scenarios (a prediction's request id sent back as feedback)."""
    seen = fuzz_endpoint(guarded.url, max_examples=60)
    assert seen["POST /predict"].get(200) and seen["POST /predict"].get(422), seen
    assert seen["POST /feedback"].get(202) and seen["POST /feedback"].get(422), seen
    assert seen["stateful"].get(202), seen  # scenarios went from /predict to /feedback
