"""One MlflowClient per adapter, on explicit URIs (never MLflow's process-global ones);
importing this module imports no MLflow (the client is built by `make_client`)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowConnection

# mlstack retries metric writes itself (bounded, with backoff, then spills to a file);
# MLflow's own HTTP retries would stall a training loop for minutes on a dead server.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow narrates store creation at INFO and warns that pip's version is unknown in
# environments built without pip (uv): noise in every mlstack command. Errors still show.
for _name in ("mlflow.store.db.utils", "mlflow.utils.environment"):
    logging.getLogger(_name).setLevel(logging.ERROR)


def tracking_uri(config: MlflowConnection, context: AdapterContext) -> str:
    """The tracking URI with a relative SQLite path made absolute against the stack folder."""
    uri = config.tracking_uri or f"sqlite:///{context.home / 'mlflow.db'}"
    return _absolute_sqlite(uri, context)


def default_artifact_location(context: AdapterContext) -> str:
    return (context.home / "mlartifacts").resolve().as_uri()


def _absolute_sqlite(uri: str, context: AdapterContext) -> str:
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri[len(prefix) :])
    if not path.is_absolute():
        path = context.base_dir / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"{prefix}{path}"


#: The name the infra program gives MLflow: a Service that resolves only inside its cluster.
CLUSTER_HOST = "mlflow.mlstack"
#: What to do when a server's name does not resolve on this machine.
UNRESOLVABLE_HINT = (
    "this machine cannot resolve the server's name; a cluster's MLflow, "
    f"http://{CLUSTER_HOST}:5000, resolves only inside it: from outside, run `kubectl -n "
    "mlstack port-forward svc/mlflow 5000:5000` and `export "
    "MLSTACK_MLFLOW_URI=http://127.0.0.1:5000`, which the exported stack file reads: "
    "docs/serving.md"
)


def check_resolvable(uri: str) -> None:
    """StackError, with UNRESOLVABLE_HINT, when `uri` is an http(s) URI whose host name this
    machine cannot resolve: said at once, where MLflow's client would fail on its first
    request with a connection pool's traceback. Not checked when a proxy carries the
    requests (HTTP(S)_PROXY without a NO_PROXY match): the proxy resolves the name."""
    import socket

    from stack.errors import StackError

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    if _proxied(parts.scheme, parts.hostname):  # the proxy resolves it, not this machine
        return
    try:
        socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StackError(
            f"MLflow server {safe_uri(uri)}: {exc.strerror or exc} ({UNRESOLVABLE_HINT})"
        ) from None


def _proxied(scheme: str, host: str) -> bool:
    """Whether requests to `host` go through a proxy (HTTP(S)_PROXY, NO_PROXY), as MLflow's
    client (requests) sends them."""
    import urllib.request

    return scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)


def make_client(config: MlflowConnection, context: AdapterContext) -> MlflowClient:
    """A client for this stack; credentials go where MLflow's REST client reads them.
    StackError when a server's name does not resolve here (`check_resolvable`)."""
    for uri in {tracking_uri(config, context), registry_uri(config, context)}:
        check_resolvable(uri)
    for variable, value in (
        ("MLFLOW_TRACKING_USERNAME", config.username),
        ("MLFLOW_TRACKING_PASSWORD", config.password and config.password.get_secret_value()),
        ("MLFLOW_TRACKING_TOKEN", config.token and config.token.get_secret_value()),
    ):
        if value:
            os.environ[variable] = value
    from mlflow import MlflowClient

    from stack_mlflow.schema_seed import seed_sqlite

    for uri in {tracking_uri(config, context), registry_uri(config, context)}:
        seed_sqlite(uri)  # a new embedded store: copied, not migrated (schema_seed.py)
    return MlflowClient(
        tracking_uri=tracking_uri(config, context), registry_uri=registry_uri(config, context)
    )


def registry_uri(config: MlflowConnection, context: AdapterContext) -> str:
    """The registry URI: the tracking URI unless one is given (as in MLflow)."""
    if config.registry_uri:
        return _absolute_sqlite(config.registry_uri, context)
    return tracking_uri(config, context)


def safe_uri(uri: str) -> str:
    """The URI fit for an error message: no password."""
    parts = urlsplit(uri)
    if parts.password:
        return uri.replace(f":{parts.password}@", ":***@")
    return uri
