"""A registry version served by `bentoml serve` on 127.0.0.1, as a client meets it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from stack.contract.serving import Endpoint
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout import RolloutController
from stack_bentoml.predictlog import read_log
from tests.adapters.bentoml.conftest import Stack, row

ENDPOINT = "churn-api"


@pytest.fixture(scope="module")
def endpoint(stack: Stack) -> Iterator[Endpoint]:
    from stack.config.rollout import RolloutPlan

    with stack.session() as session:
        Governance(session).promote(stack.versions.champion.ref, S.APPROVED)
        result = RolloutController(session).deploy(
            stack.versions.champion.ref, RolloutPlan(strategy="direct", endpoint=ENDPOINT)
        )
    yield result.endpoint


def test_a_registry_version_answers_with_request_id_and_version(
    endpoint: Endpoint, stack: Stack
) -> None:
    assert endpoint.url.startswith("http://127.0.0.1:")
    response = httpx.post(f"{endpoint.url}/predict", json=row(tenure=3.0))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] in ([0], [1])
    assert response.headers["x-model-version"] == stack.versions.champion.ref
    assert len(response.headers["x-request-id"]) == 32
    ids = {
        httpx.post(f"{endpoint.url}/predict", json=row()).headers["x-request-id"] for _ in range(50)
    }
    assert len(ids) == 50  # a new one each time, a UUID4 (version and variant bits)
    assert all(uuid.UUID(hex=i).version == 4 and uuid.UUID(hex=i).hex == i for i in ids)
    given = httpx.post(f"{endpoint.url}/predict", json=row(), headers={"x-request-id": "abc-1"})
    assert given.headers["x-request-id"] == "abc-1"
    batch = httpx.post(f"{endpoint.url}/predict", json=[row(), row(tenure=-3.0)])
    assert len(batch.json()["predictions"]) == 2
    assert httpx.get(f"{endpoint.url}/readyz").status_code == 200
    assert httpx.get(f"{endpoint.url}/livez").status_code == 200
    with stack.session() as session:
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == (
            stack.versions.champion.ref
        )


BAD = [
    (b'{"tenure": "1", "monthly_spend": 1, "support_calls": 1, "late payments": 1}', "tenure"),
    (b'{"tenure": 1, "monthly_spend": 1, "support_calls": 1}', "late payments"),
    (b'{"tenure": 1, "monthly_spend": 1, "support_calls": 1, "late payments": 1, "x": 1}', "x"),
    (b'{"tenure": NaN, "monthly_spend": 1, "support_calls": 1, "late payments": 1}', "tenure"),
    (b'{"tenure": Infinity, "monthly_spend": 1, "support_calls": 1, "late payments": 1}', "tenure"),
    (b'{"tenure": null, "monthly_spend": 1, "support_calls": 1, "late payments": 1}', "tenure"),
    (b'{"tenure": true, "monthly_spend": 1, "support_calls": 1, "late payments": 1}', "tenure"),
    (b"not json at all", "body"),
    (b"[1, 2]", "body"),
    (b'"just a string"', "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_input_gets_a_4xx_naming_the_field(endpoint: Endpoint, body: bytes, field: str) -> None:
    response = httpx.post(
        f"{endpoint.url}/predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    fields = [problem["field"] for problem in response.json()["fields"]]
    assert any(field in name for name in fields), fields
    assert "x-request-id" in response.headers


def test_empty_oversize_and_wrong_method_are_4xx(endpoint: Endpoint) -> None:
    assert httpx.post(f"{endpoint.url}/predict", content=b"").status_code == 400
    assert httpx.post(f"{endpoint.url}/predict", content=b"[]").status_code == 422
    huge = b"[" + b",".join([json.dumps(row()).encode()] * 20_000) + b"]"
    assert httpx.post(f"{endpoint.url}/predict", content=huge).status_code == 413
    many = json.dumps([row()] * 1001).encode()
    response = httpx.post(f"{endpoint.url}/predict", content=many)
    assert response.status_code == 422
    assert "at most 1000" in response.json()["error"]
    assert httpx.get(f"{endpoint.url}/predict").status_code == 405
    # the worker survived all of it
    assert httpx.post(f"{endpoint.url}/predict", json=row()).status_code == 200


def test_the_prediction_log_loses_nothing_under_load(endpoint: Endpoint, stack: Stack) -> None:
    sent = 400
    marker = f"load-{time.time_ns()}"

    async def drive() -> list[int]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def one(i: int) -> int:
                response = await client.post(
                    f"{endpoint.url}/predict",
                    json=row(tenure=float(i)),
                    headers={"x-request-id": f"{marker}-{i}"},
                )
                return response.status_code

            return await asyncio.gather(*(one(i) for i in range(sent)))

    statuses = asyncio.run(drive())
    assert statuses.count(200) == sent
    log_dir = stack.folder / ".mlstack" / "predictions" / ENDPOINT
    deadline = time.monotonic() + 10
    logged: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = read_log(log_dir).to_pylist()
        logged = [r for r in rows if str(r["request_id"]).startswith(marker)]
        if len(logged) >= sent:
            break
        time.sleep(0.2)
    assert len(logged) == sent
    assert len({r["request_id"] for r in logged}) == sent
    first = next(r for r in logged if r["request_id"] == f"{marker}-7")
    assert json.loads(str(first["inputs"]))[0]["tenure"] == 7.0
    assert first["model_version"] == stack.versions.champion.ref
    assert first["status"] == 200
    assert sorted(p.name for p in log_dir.iterdir())[0].startswith("date=")


def test_openapi_schema_describes_the_input(endpoint: Endpoint) -> None:
    document = httpx.get(f"{endpoint.url}/openapi.json").json()
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    record = body["schema"]["oneOf"][0]
    assert set(record["required"]) == {"tenure", "monthly_spend", "support_calls", "late payments"}
    assert record["additionalProperties"] is False


def test_sigterm_lets_in_flight_requests_finish_and_writes_the_log(stack: Stack) -> None:
    import threading

    from stack_bentoml.config import BentoConfig
    from stack_bentoml.server import BentoServer
    from tests.adapters.bentoml.conftest import free_port

    with stack.session() as session:
        context = session.adapter_context()
    server = BentoServer(BentoConfig(port=free_port()), context)
    slow = server.deploy(stack.versions.quirky, endpoint="slow")
    answers: list[int] = []

    def call() -> None:  # the quirky model takes 3 s on this row
        response = httpx.post(
            f"{slow.url}/predict",
            json=row(monthly_spend=5000.0),
            headers={"x-request-id": "in-flight"},
            timeout=30,
        )
        answers.append(response.status_code)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(1.0)
    server.undeploy("slow")  # SIGTERM, then waits for the process to exit
    caller.join(30)
    assert answers == [200]
    logged = read_log(context.home / "predictions" / "slow").to_pylist()
    assert [r["request_id"] for r in logged] == ["in-flight"]
    assert "slow" not in [e.name for e in server.endpoints()]


def test_an_unwritable_log_is_spilled_said_degraded_and_replayed_when_writable_again(
    endpoint: Endpoint, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unwritable for root too (root ignores file modes; a read-only mount needs privileges):
    the endpoint's log folder is replaced by a regular file, so the worker's mkdir of an hour
    folder under it fails with NotADirectoryError whoever the worker runs as."""
    from stack_bentoml.spill import waiting
    from tests.support.cli import run_in_process
    from tests.support.readiness import readyz_until

    log_dir = stack.folder / ".mlstack" / "predictions" / ENDPOINT
    kept = log_dir.with_name(f"{ENDPOINT}.kept")
    log_dir.mkdir(parents=True, exist_ok=True)  # run alone, nothing was logged yet
    log_dir.rename(kept)
    log_dir.write_text("not a folder")
    marker = f"outage-{time.time_ns()}"
    since = datetime.now(UTC)
    kinds = ["live", "bake", "test"] * 5
    try:
        with httpx.Client(timeout=10) as client:
            for i, kind in enumerate(kinds):
                answered = client.post(
                    f"{endpoint.url}/predict",
                    json=row(tenure=float(i)),
                    headers={"x-request-id": f"{marker}-{i}", "x-mlstack-traffic": kind},
                )
                assert answered.status_code == 200, answered.text
            refused = client.post(
                f"{endpoint.url}/predict", json=row(), headers={"x-mlstack-traffic": "prod"}
            )
            assert refused.status_code == 400
            assert refused.json()["error"].startswith("header x-mlstack-traffic: 'prod'")
            document = client.get(f"{endpoint.url}/openapi.json").json()
            [header] = document["paths"]["/predict"]["post"]["parameters"]
            assert header["schema"]["enum"] == ["live", "bake", "test", "synthetic", "probe"]
            ready = readyz_until(client, endpoint.url, degraded=True)
        assert ready.status_code == 200  # still answering: degraded, not down
        [reason] = ready.json()["reasons"]
        assert "prediction log unwritable" in reason and "NotADirectoryError" in reason
        monkeypatch.chdir(stack.folder)
        status = run_in_process("rollout", "status", ENDPOINT)
        assert status.returncode == 0, status.stderr
        assert "problem: prediction log unwritable since" in status.stdout
        spill = stack.folder / ".mlstack" / "prediction-spill" / ENDPOINT
        # every answered row reaches the spill by the writer's next flush after it was
        # answered (the first refused flush may hold only the first rows): wait for it
        deadline = time.monotonic() + 60
        while waiting(spill).rows < len(kinds) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert waiting(spill).rows == len(kinds)
        with stack.session() as session:  # what a rollout's judge reads: its figures short
            assert "prediction log unwritable" in session.server.health(ENDPOINT).degraded[0]
    finally:
        log_dir.unlink()
        kept.rename(log_dir)
    with httpx.Client(timeout=10) as client:
        readyz_until(client, endpoint.url, degraded=False)  # the next flush replays
    logged = {
        r["request_id"]: r["traffic"]
        for r in read_log(log_dir, since=since).to_pylist()
        if str(r["request_id"]).startswith(marker)
    }
    assert logged == {f"{marker}-{i}": kind for i, kind in enumerate(kinds)}
    assert waiting(spill).files == 0
    with stack.session() as session:
        health = session.server.health(ENDPOINT, since=since)
    assert health.versions[stack.versions.champion.ref].requests == 10  # live and bake
    assert health.degraded == ()
