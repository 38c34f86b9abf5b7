"""MLflow's server as the infra program runs it answers the names pods and a port-forward
call it by: MLflow 3 refuses (403) any Host header outside `--allowed-hosts`, whose default
(localhost and private IPs) left `http://mlflow.mlstack:5000` refused to every pod."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest
from mlstack_infra.manifests import Endpoints, render

from tests.infra.test_targets import spec_for
from tests.support.mlflow_server import MlflowServer

SEARCH = "/api/2.0/mlflow/registered-models/search?max_results=1"


def _allowed_hosts() -> tuple[str, ...]:
    objects = render(spec_for("aws"), Endpoints("s3://b/mlflow", "db"))
    [mlflow] = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlflow"
    ]
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    at = args.index("--allowed-hosts")
    return ("--allowed-hosts", args[at + 1])


def _status(port: int, host: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", SEARCH, headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    folder: Path = tmp_path_factory.mktemp("mlflow-hosts")
    running = MlflowServer(
        f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", extra_args=_allowed_hosts()
    )
    running.start()
    yield running  # type: ignore[misc]
    running.stop()


@pytest.mark.parametrize(
    "host",
    [
        "mlflow.mlstack:5000",  # the exported stack file's tracking URI
        "mlflow.mlstack.svc.cluster.local:5000",
        "mlflow:5000",  # a pod of the same namespace
        f"127.0.0.1:{5000}",  # a port-forward
        "localhost:5000",
    ],
)
def test_the_names_pods_and_a_port_forward_use_are_answered(
    server: MlflowServer, host: str
) -> None:
    assert _status(server.port, host) == 200


def test_a_foreign_host_header_is_still_refused(server: MlflowServer) -> None:
    assert _status(server.port, "attacker.example:5000") == 403


def test_every_host_mlflow_allows_by_default_is_still_allowed() -> None:
    """Naming hosts replaces MLflow's default list: each of its patterns (the installed
    MLflow's) is kept, so a port-forward over IPv6 or a pod by private IP still gets in."""
    from mlflow.server.security_utils import get_default_allowed_hosts

    allowed = _allowed_hosts()[1].split(",")
    assert [host for host in get_default_allowed_hosts() if host not in allowed] == []


def test_an_ipv6_port_forward_is_answered(server: MlflowServer) -> None:
    assert _status(server.port, "[::1]:5000") == 200
