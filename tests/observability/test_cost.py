"""`mlstack cost`: a live endpoint's CPU and memory priced per day and per 1,000 predictions
from the stack file's table; an endpoint with no live traffic reported idle with the command
to retire it, and alerted once."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from stack.config.observability import CostTable
from stack.errors import StackConfigError
from stack.observability.cost import Usage, price
from stack.session import StackSession
from tests.adapters.bentoml.conftest import STACK as SERVING_STACK
from tests.adapters.bentoml.conftest import Stack, champion_serving, row
from tests.adapters.bentoml.models import Registered
from tests.support.cli import cli_in
from tests.support.ports import free_port
from tests.support.prometheus import webhook_receiver

STACK = """
name: cost-test
home: .mlstack
tracker: {{{{adapter: mlflow}}}}
registry: {{{{adapter: mlflow}}}}
server: {{{{adapter: bentoml, port: {{port}}, log_flush_seconds: 0.2}}}}
spine: {{{{url: "sqlite:///.mlstack/spine.db"}}}}
cost: {{{{cpu_core_hour: 0.04, memory_gib_hour: 0.005, gpu_hour: 2.5, gpus: {{{{churn: 1}}}},
        idle_after: {idle}}}}}
alerts: {{{{notify: ["{hook}"]}}}}
"""
REQUESTS = 25
IDLE_AFTER = 20  # seconds: longer than the first test's commands take to start


def test_a_versions_share_is_priced_per_day_and_per_thousand() -> None:
    table = CostTable(cpu_core_hour=0.04, memory_gib_hour=0.01, gpu_hour=2.0)
    usage = Usage(
        "churn",
        cpu_seconds_per_day=7200,  # two core-hours a day
        memory_gib=2.0,
        gpus=1,
        predictions={"churn@1": 3000, "churn@2": 1000},
        period_days=2.0,
        last_request=None,
        processes=2,
    )
    one, two = price(usage, table)
    day = 2 * 0.04 + 2.0 * 24 * 0.01 + 24 * 2.0  # 48.56
    assert (one.version, one.model) == ("churn@1", "churn")
    assert one.predictions_per_day == 1500
    assert one.cost_per_day == pytest.approx(day * 0.75)
    assert one.cost_per_1k == pytest.approx(day * 0.75 / 1500 * 1000)
    assert two.gpu_hours_per_day == pytest.approx(6.0)
    assert two.cost_per_day == pytest.approx(day * 0.25)


def test_an_endpoint_without_traffic_costs_its_whole_day() -> None:
    usage = Usage("quiet", 100.0, 1.0, 0, {}, 1.0, None, 1)
    [line] = price(usage, CostTable(cpu_core_hour=36.0, memory_gib_hour=1.0))
    assert line.version == "-" and line.cost_per_1k is None
    assert line.cost_per_day == pytest.approx(100 / 3600 * 36 + 24)


def test_a_negative_gpu_count_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text("name: s\ncost: {gpus: {churn: -1}}\n")
    with pytest.raises(StackConfigError) as caught:
        StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path)
    assert "cost.gpus" in str(caught.value) and "churn: -1 GPUs" in str(caught.value)


@pytest.fixture(scope="module")
def receiver() -> Iterator[list[object]]:
    with webhook_receiver() as hook:
        hook.bodies.append(hook.url.replace("http://", "json://"))  # the URL, first
        yield hook.bodies


@pytest.fixture(scope="module")
def serving(
    tmp_path_factory: pytest.TempPathFactory,
    receiver: list[object],
    registered_template: Registered,
) -> Iterator[tuple[Stack, float]]:
    folder = tmp_path_factory.mktemp("cost")
    template = STACK.format(
        idle=f"{IDLE_AFTER}s", hook=receiver[0]
    )  # champion_serving adds the port
    with (
        champion_serving(folder, template, registered_template) as stack,
        stack.session() as session,
    ):
        (endpoint,) = session.server.endpoints()
        with httpx.Client(timeout=10) as client:
            for _ in range(REQUESTS):
                client.post(f"{endpoint.url}/predict", json=[row(), row()]).raise_for_status()
        yield stack, time.monotonic()  # when the last request was answered


def test_cost_prices_a_live_endpoint_from_its_processes_and_log(
    serving: tuple[Stack, float],
) -> None:
    stack, _ = serving
    time.sleep(0.5)  # the log's flush interval (0.2 s): every answer is in the log
    done = cli_in(stack.folder)("cost", "--period", "1d", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(done.stdout)
    [line] = found["lines"]
    assert line["endpoint"] == "churn"
    assert line["version"] == stack.versions.champion.ref
    assert line["predictions_per_day"] == REQUESTS * 2  # rows, over one day
    assert line["cpu_seconds_per_day"] > 0
    assert 0.01 < line["memory_gib"] < 64
    assert line["gpu_hours_per_day"] == 24.0
    expected = (
        line["cpu_seconds_per_day"] / 3600 * 0.04 + line["memory_gib"] * 24 * 0.005 + 24 * 2.5
    )
    assert line["cost_per_day"] == pytest.approx(expected)
    assert line["cost_per_1k"] == pytest.approx(expected / (REQUESTS * 2) * 1000)
    assert found["idle"] == {}

    logged = cli_in(stack.folder)("cost", "--log-metrics", "--json")
    assert logged.returncode == 0, logged.stderr
    [note] = [n for n in json.loads(logged.stdout)["notes"] if "logged" in n]
    assert note.startswith(f"{stack.versions.champion.ref}: cost_per_1k_predictions ")
    with stack.session() as session:
        run = session.tracker.get_run(stack.versions.champion.run_id or "")
    assert run.metrics["cost_per_1k_predictions"] > 0  # what a gate's champion rule reads


def test_an_idle_endpoint_is_named_with_its_retire_command_and_alerted_once(
    serving: tuple[Stack, float], receiver: list[object]
) -> None:
    stack, last = serving
    time.sleep(max(0.0, last + IDLE_AFTER + 0.5 - time.monotonic()))  # no live request since
    cli = cli_in(stack.folder)
    shown = cli("cost")
    assert shown.returncode == 0, shown.stderr
    assert (
        "idle: churn answered no live request lately; retire it: mlstack undeploy churn"
        in shown.stdout
    )
    for _ in range(2):
        alerted = cli("cost", "--alert")
        assert alerted.returncode == 0 and "alert not delivered" not in alerted.stderr
    titles = [body["title"] for body in receiver[1:] if isinstance(body, dict)]
    assert titles == [f"[FIRING] churn answered no live request for {IDLE_AFTER}s"]


def test_a_gate_holds_a_challenger_to_n_times_the_champions_cost() -> None:
    from stack.config.policy import ChampionRule, Gate
    from stack.contract.registry import ModelVersion
    from stack.contract.states import LifecycleState as S
    from stack.contract.tracking import RunRecord, RunRef, RunStatus
    from stack.governance import gates

    def decide(challenger: float) -> gates.GateDecision:
        def run(cost: float) -> RunRecord:
            metrics = {"cost_per_1k_predictions": cost}
            return RunRecord(RunRef("r", "e"), RunStatus.FINISHED, metrics=metrics)

        inputs = gates.GateInputs(
            version=ModelVersion("churn", 3, S.CANARY, "models:/m", run_id="r3"),
            run=run(challenger),
            champion=ModelVersion("churn", 2, S.SERVING, "models:/m", run_id="r2"),
            champion_run=run(0.40),
            checks_present=frozenset(),
            eligible_approvers=(),
        )
        rule = ChampionRule.model_validate({"metric": "cost_per_1k_predictions", "max_ratio": 1.5})
        return gates.evaluate(Gate(champion=rule), S.SERVING, inputs)

    assert decide(0.59).passed
    refused = decide(0.61)
    assert not refused.passed
    assert "0.61 vs 0.4 for churn@2 (1.52x, at most 1.50x)" in refused.explain()


#: What OpenCost's Allocation API answers (a recorded response shape, after the example
#: responses of https://opencost.io/docs/integrations/api and api-examples: `code`, `data` a
#: list of sets, one per step, each mapping the aggregate's value to an allocation), for
#: `aggregate=label:app.kubernetes.io/name&accumulate=true` over one day, trimmed to the
#: fields mlstack reads and a few it does not.
GIB = 1024**3
OPENCOST_ANSWER = {
    "code": 200,
    "status": "success",
    "data": [
        {
            "churn": {
                "name": "churn",
                "properties": {
                    "cluster": "default-cluster",
                    "namespace": "mlstack-serving",
                    "labels": {"app_kubernetes_io_name": "churn"},
                },
                "window": {"start": "2026-11-29T00:00:00Z", "end": "2026-11-30T00:00:00Z"},
                "start": "2026-11-29T00:00:00Z",
                "end": "2026-11-30T00:00:00Z",
                "minutes": 1440.0,
                "cpuCores": 0.5,
                "cpuCoreRequestAverage": 0.5,
                "cpuCoreUsageAverage": 0.21,
                "cpuCoreHours": 12.0,
                "cpuCost": 0.38,
                "gpuCount": 1.0,
                "gpuHours": 24.0,
                "gpuCost": 60.0,
                "ramBytes": 2 * GIB,
                "ramByteHours": 48.0 * GIB,
                "ramCost": 0.11,
                "pvCost": 0.0,
                "networkCost": 0.0,
                "sharedCost": 0.0,
                "externalCost": 0.0,
                "totalCost": 60.49,
                "totalEfficiency": 0.42,
            },
            "__idle__": {"name": "__idle__", "minutes": 1440.0, "totalCost": 12.5},
        }
    ],
}


@contextlib.contextmanager
def opencost(status: int, body: bytes) -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """An HTTP server on 127.0.0.1 answering every GET with `status` and `body`; the query
    of each request kept."""
    asked: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            asked.append({"path": [path], **urllib.parse.parse_qs(query)})
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _with_opencost(stack: Stack, url: str) -> str:
    """The test stack's file naming OpenCost at `url`, beside it; its name."""
    text = (stack.folder / "stack.yaml").read_text()
    (stack.folder / "opencost.yaml").write_text(
        text.replace("cost: {", f"cost: {{opencost: {{url: {url}}}, ", 1)
    )
    return "opencost.yaml"


def test_with_opencost_the_cluster_allocation_prices_the_endpoint(
    serving: tuple[Stack, float],
) -> None:
    stack, _ = serving
    time.sleep(0.5)  # the log's flush interval (0.2 s): every answer is in the log
    with opencost(200, json.dumps(OPENCOST_ANSWER).encode()) as (url, asked):
        stack_file = _with_opencost(stack, url)
        done = cli_in(stack.folder)("--stack", stack_file, "cost", "--period", "1d", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    [query] = asked
    assert query["path"] == ["/allocation"]
    assert query["aggregate"] == ["label:app.kubernetes.io/name"]
    assert query["accumulate"] == ["true"]
    start, end = query["window"][0].split(",")  # an RFC 3339 pair, one day apart
    span = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    assert span == timedelta(days=1)
    [line] = json.loads(done.stdout)["lines"]
    assert line["version"] == stack.versions.champion.ref
    assert line["cpu_seconds_per_day"] == pytest.approx(12.0 * 3600)
    assert line["memory_gib"] == pytest.approx(2.0)
    assert line["gpu_hours_per_day"] == pytest.approx(24.0)
    assert line["cost_per_day"] == pytest.approx(60.49)  # OpenCost's price, not the table's
    assert line["cost_per_1k"] == pytest.approx(60.49 / (REQUESTS * 2) * 1000)


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (None, b"", "unreachable"),
        (404, b"404 page not found", "answered 404"),
        (200, b"<html>Grafana</html>", "answered something that is no allocation set"),
        (200, b'{"code": 500, "message": "bad window"}', "no allocation set (ValueError: code"),
    ],
    ids=["down", "not-found", "not-json", "refused"],
)
def test_an_opencost_that_cannot_be_read_is_named_without_a_traceback(
    serving: tuple[Stack, float], status: int | None, body: bytes, said: str
) -> None:
    stack, _ = serving
    with contextlib.ExitStack() as running:
        if status is None:
            url = f"http://127.0.0.1:{free_port()}"
        else:
            url, _ = running.enter_context(opencost(status, body))
        done = cli_in(stack.folder)("--stack", _with_opencost(stack, url), "cost")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"OpenCost at {url}/allocation" in done.stderr and said in done.stderr
    assert "Traceback" not in done.stderr


def test_a_version_slower_to_answer_costs_more_per_thousand_than_its_neighbour() -> None:
    table = CostTable(cpu_core_hour=0.04, memory_gib_hour=0.01, gpu_hour=2.0)
    usage = Usage(
        "churn",
        cpu_seconds_per_day=7200,
        memory_gib=2.0,
        gpus=1,
        predictions={"churn@1": 1000, "churn@2": 1000},
        period_days=1.0,
        last_request=None,
        processes=1,
        busy_seconds={"churn@1": 1.0, "churn@2": 3.0},  # the challenger 3x slower
    )
    one, two = price(usage, table)
    assert two.cpu_seconds_per_day == pytest.approx(3 * one.cpu_seconds_per_day) == 5400
    assert one.memory_gib == two.memory_gib == 1.0  # held alike: split by predictions
    cpu_day = 7200 / 3600 * 0.04
    assert two.cost_per_day - one.cost_per_day == pytest.approx(cpu_day / 2)
    assert one.cost_per_day + two.cost_per_day == pytest.approx(cpu_day + 2.0 * 24 * 0.01 + 48)
    assert two.cost_per_1k is not None and one.cost_per_1k is not None
    assert two.cost_per_1k > one.cost_per_1k


SHARED = SERVING_STACK + "cost: {{cpu_core_hour: 1.0}}\n"  # the CPU alone priced


def test_a_slow_challenger_on_the_champions_endpoint_costs_more_per_thousand(
    tmp_path: Path, registered_template: Registered
) -> None:
    from stack.contract.serving import TrafficSplit

    with (
        champion_serving(tmp_path, SHARED, registered_template) as stack,
        stack.session() as session,
    ):
        champion, slow = stack.versions.champion, stack.versions.quirky
        session.server.add_version(slow, endpoint="churn")
        endpoint = session.server.route("churn", TrafficSplit({champion.ref: 0.5, slow.ref: 0.5}))
        body = row(monthly_spend=2000.0)  # the quirky model sleeps 3 s on it
        with httpx.Client(timeout=60) as client:
            for version in (champion.ref, slow.ref, champion.ref, slow.ref):
                headers = {"x-mlstack-traffic": "probe", "x-mlstack-version": version}
                answer = client.post(f"{endpoint.url}/predict", json=body, headers=headers)
                assert answer.status_code == 200, answer.text
        time.sleep(0.5)  # the log's flush interval (0.2 s): every answer is in the log
        done = cli_in(stack.folder)("cost", "--period", "1d", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line["version"]: line for line in json.loads(done.stdout)["lines"]}
    assert lines[champion.ref]["predictions_per_day"] == lines[slow.ref]["predictions_per_day"]
    assert lines[slow.ref]["cost_per_1k"] > 2 * lines[champion.ref]["cost_per_1k"]


def test_a_gpu_count_for_no_endpoint_names_the_stack_file_and_field(
    serving: tuple[Stack, float],
) -> None:
    stack, _ = serving
    text = (stack.folder / "stack.yaml").read_text()
    (stack.folder / "typo.yaml").write_text(text.replace("gpus: {churn: 1}", "gpus: {nosuch: 1}"))
    done = cli_in(stack.folder)("--stack", "typo.yaml", "cost")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "typo.yaml: cost.gpus.nosuch: no endpoint named nosuch (endpoints: churn)" in (
        done.stderr
    )
