"""The Server role on BentoML: one `bentoml serve` process per endpoint, on 127.0.0.1.

An endpoint is a folder under `<home>/serving/<name>/` holding `endpoint.json` (the versions,
their schema and the traffic split), the server's pid and its log. Deploying starts the
process and waits for BentoML's `/readyz`; routing writes a new revision of the file, which
every worker picks up within a second (no restart, no dropped request); undeploying sends
SIGTERM, which BentoML turns into a graceful shutdown (in-flight requests finish, the
prediction log is written)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.contract.registry import ModelVersion
from stack.contract.serving import Endpoint, HealthReport, LoggedRequest, TrafficSplit
from stack.errors import NotFound, StackError
from stack.plugins.manifest import AdapterContext
from stack.processes import alive
from stack_bentoml.app import LOG_URL_ENV
from stack_bentoml.config import BentoConfig
from stack_bentoml.models import import_version
from stack_bentoml.spec import EndpointSpec, VersionSpec, read_spec, write_spec

SPEC_FILE = "endpoint.json"
PID_FILE = "server.pid"
LOG_FILE = "server.log"


class BentoServer:
    def __init__(self, config: BentoConfig | None, context: AdapterContext) -> None:
        self.config = config or BentoConfig()
        self.context = context
        self.root = context.home / "serving"
        self.predictions = context.home / "predictions"
        self.bentoml_home = (context.home / self.config.bentoml_home).resolve()

    # -- the role -----------------------------------------------------------------------

    def deploy(self, version: ModelVersion, *, endpoint: str) -> Endpoint:
        """Serve `version` alone on `endpoint`: start it, or re-route a running one to it."""
        _check_name(endpoint)
        if self._running(endpoint):
            self.add_version(version, endpoint=endpoint)
            return self.route(endpoint, TrafficSplit({version.ref: 1.0}))
        loaded = self._import(version)
        spec = EndpointSpec(
            name=endpoint,
            revision=1,
            host=self.config.host,
            port=self._free_port(endpoint),
            versions={version.ref: loaded},
            weights={version.ref: 1.0},
            ab_header=self.config.ab_header,
            log_dir=str((self.predictions / endpoint).resolve()),
            log_table=self.config.prediction_log.table if self.config.prediction_log else None,
            max_body_bytes=self.config.max_body_bytes,
            max_rows=self.config.max_rows,
            log_flush_seconds=self.config.log_flush_seconds,
        )
        write_spec(spec, self._spec_path(endpoint))
        self._start(spec)
        return _endpoint(spec)

    def add_version(self, version: ModelVersion, *, endpoint: str) -> None:
        spec = self._spec(endpoint)
        loaded = self._import(version)
        live = spec.live_inputs()
        if loaded.inputs != live:
            raise StackError(
                f"{version.ref} takes other inputs than the live version on {endpoint!r}: "
                f"{[c.name for c in loaded.inputs]} vs {[c.name for c in live]}; "
                "deploy it on its own endpoint"
            )
        write_spec(
            spec.model_copy(update={"versions": {**spec.versions, version.ref: loaded}}),
            self._spec_path(endpoint),
        )

    def route(self, endpoint: str, split: TrafficSplit) -> Endpoint:
        spec = self._spec(endpoint)
        unknown = [r for r in [*split.weights, *split.shadows] if r not in spec.versions]
        if unknown:
            raise StackError(
                f"endpoint {endpoint!r} has no version {', '.join(unknown)} loaded; "
                f"loaded: {', '.join(spec.versions)} (add_version first)"
            )
        updated = spec.model_copy(
            update={
                "revision": spec.revision + 1,
                "weights": dict(split.weights),
                "shadows": tuple(split.shadows),
                "sticky": split.sticky,
            }
        )
        write_spec(updated, self._spec_path(endpoint))
        self._wait_for_revision(updated)
        return _endpoint(updated)

    def health(self, endpoint: str, *, since: datetime | None = None) -> HealthReport:
        from stack_bentoml.health import version_health

        spec = self._spec(endpoint)
        ready = self._running(endpoint) and _get(f"{spec.url}/readyz") == 200
        versions = version_health(self._log_rows(endpoint, since))
        live = [v for v in versions.values() if v.role == "live"]
        requests = sum(v.requests for v in live)
        errors = sum(v.errors for v in live)
        p99 = max((v.p99_latency_ms for v in live if v.p99_latency_ms is not None), default=None)
        return HealthReport(
            endpoint,
            ready=ready,
            requests=requests,
            error_rate=errors / requests if requests else 0.0,
            p99_latency_ms=p99,
            versions=versions,
        )

    def logged(
        self, endpoint: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[LoggedRequest]:
        """The endpoint's prediction log (answers, shadow answers, feedback), oldest first."""
        _check_name(endpoint)
        return [_logged(row) for row in self._log_rows(endpoint, since, until)]

    def _log_rows(
        self, endpoint: str, since: datetime | None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        log = self.config.prediction_log
        if log is not None:
            from stack_bentoml.postgres_log import read_rows

            return read_rows(log.connect_url(), endpoint, since=since, until=until, table=log.table)
        from stack_bentoml.predictlog import read_log

        table = read_log(self.predictions / endpoint, since=since, until=until)
        rows: list[dict[str, Any]] = table.to_pylist()
        return rows

    def endpoints(self) -> list[Endpoint]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob(f"*/{SPEC_FILE}")):
            if self._running(path.parent.name):
                found.append(_endpoint(read_spec(path)))
        return found

    def undeploy(self, endpoint: str) -> None:
        self._spec(endpoint)
        self._stop(endpoint)
        shutil.rmtree(self.root / endpoint, ignore_errors=True)

    def build(self, version: ModelVersion, *, endpoint: str) -> str:
        """`bentoml build` of `version` served as `endpoint` (for the image the cluster runs),
        offline: packages are listed, not locked against an index. Returns the bento's tag."""
        import tempfile

        import yaml

        _check_name(endpoint)
        loaded = self._import(version)
        spec = EndpointSpec(
            name=endpoint,
            revision=1,
            host="0.0.0.0",
            port=3000,
            versions={version.ref: loaded.model_copy(update={"model_dir": ""})},
            weights={version.ref: 1.0},
            ab_header=self.config.ab_header,
            log_dir="/tmp/mlstack-predictions",
            max_body_bytes=self.config.max_body_bytes,
            max_rows=self.config.max_rows,
            log_flush_seconds=self.config.log_flush_seconds,
        )
        bentofile = {
            "service": "service:MlstackEndpoint",
            "name": f"mlstack-{endpoint.lower()}",
            "labels": {"mlstack.model": version.model, "mlstack.version": str(version.version)},
            "include": ["service.py", SPEC_FILE],
            "models": [loaded.model_tag],
            "envs": [{"name": "MLSTACK_ENDPOINT_SPEC", "value": SPEC_FILE}],
            "python": {"packages": ["mlstack-bentoml"], "lock_packages": False},
        }
        with tempfile.TemporaryDirectory(prefix="mlstack-bento-") as scratch:
            context = Path(scratch)
            (context / "service.py").write_text(
                "from stack_bentoml.service import MlstackEndpoint\n\n"
                "__all__ = ['MlstackEndpoint']\n"
            )
            write_spec(spec, context / SPEC_FILE)
            (context / "bentofile.yaml").write_text(yaml.safe_dump(bentofile, sort_keys=False))
            built = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bentoml",
                    "build",
                    str(context),
                    "--version",
                    f"v{version.version}",
                    "--output",
                    "tag",
                ],
                cwd=context,
                env={**os.environ, **self._bentoml_env()},
                capture_output=True,
                text=True,
                timeout=600,
            )
        if built.returncode != 0:
            raise StackError(f"bentoml build of {version.ref} failed:\n{built.stderr[-3000:]}")
        return built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")

    def _bentoml_env(self) -> dict[str, str]:
        return {"BENTOML_HOME": str(self.bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}

    def manifests(
        self, endpoint: str, versions: Sequence[ModelVersion], split: TrafficSplit
    ) -> list[dict[str, object]]:
        """The cluster path: Deployments, Services, autoscalers, budgets, one HTTPRoute."""
        from stack_bentoml.kubernetes import manifests

        return manifests(self.config.kubernetes, endpoint, versions, split)

    # -- processes ----------------------------------------------------------------------

    def _start(self, spec: EndpointSpec) -> None:
        folder = self.root / spec.name
        env = {
            **os.environ,
            "MLSTACK_ENDPOINT_SPEC": str(self._spec_path(spec.name).resolve()),
            "MLSTACK_WORKERS": str(self.config.workers),
            **self._bentoml_env(),
            "PYTHONUNBUFFERED": "1",
        }
        if self.config.prediction_log is not None:
            env[LOG_URL_ENV] = self.config.prediction_log.connect_url()
        command = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "stack_bentoml.service:MlstackEndpoint",
            "--host",
            spec.host,
            "--port",
            str(spec.port),
        ]
        with open(folder / LOG_FILE, "ab") as log:
            process = subprocess.Popen(
                command,
                cwd=folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (folder / PID_FILE).write_text(str(process.pid))
        deadline = time.monotonic() + self.config.ready_timeout_seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._forget(spec.name)
                raise StackError(
                    f"endpoint {spec.name!r} exited while starting (code {process.returncode}):\n"
                    + _tail(folder / LOG_FILE)
                )
            if _get(f"{spec.url}/readyz") == 200:
                return
            time.sleep(0.25)
        self._stop(spec.name)
        self._forget(spec.name)
        raise StackError(
            f"endpoint {spec.name!r} was not ready after {self.config.ready_timeout_seconds:g} s:\n"
            + _tail(folder / LOG_FILE)
        )

    def _stop(self, endpoint: str, timeout: float = 30.0) -> None:
        pid = self._pid(endpoint)
        if pid is None:
            return
        # BentoML's workers run in process groups of their own: note them before asking the
        # server to stop, so that none outlives it if it has to be killed.
        family = _descendants(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p) for p in [pid, *family]):
            time.sleep(0.1)
        for member in [pid, *family]:
            if alive(member):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)

    def _forget(self, endpoint: str) -> None:
        shutil.rmtree(self.root / endpoint, ignore_errors=True)

    def _pid(self, endpoint: str) -> int | None:
        path = self.root / endpoint / PID_FILE
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    def _running(self, endpoint: str) -> bool:
        pid = self._pid(endpoint)
        return pid is not None and alive(pid) and self._spec_path(endpoint).is_file()

    def _wait_for_revision(self, spec: EndpointSpec, timeout: float = 15.0) -> None:
        """Until a worker answers with the new revision (each re-reads within ~0.25 s)."""
        if not self._running(spec.name):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _get_json(f"{spec.url}/endpoint").get("revision") == spec.revision:
                time.sleep(0.5)  # the other workers poll on the same period
                return
            time.sleep(0.1)

    # -- files --------------------------------------------------------------------------

    def _spec_path(self, endpoint: str) -> Path:
        return self.root / endpoint / SPEC_FILE

    def _spec(self, endpoint: str) -> EndpointSpec:
        path = self._spec_path(endpoint)
        if not path.is_file():
            raise NotFound(f"no endpoint {endpoint!r} (deployed: {self._names() or 'none'})")
        return read_spec(path)

    def _names(self) -> str:
        return ", ".join(e.name for e in self.endpoints())

    def _free_port(self, endpoint: str) -> int:
        taken = {read_spec(p).port for p in self.root.glob(f"*/{SPEC_FILE}")}
        port = self.config.port
        while port in taken or not _bindable(self.config.host, port):
            port += 1
        return port

    def _import(self, version: ModelVersion) -> VersionSpec:
        from stack_mlflow.connection import default_artifact_location

        return import_version(
            version,
            self._tracking_uri(),
            self.bentoml_home,
            artifact_location=default_artifact_location(self.context),
        )

    def _tracking_uri(self) -> str:
        from stack_mlflow.connection import tracking_uri

        return tracking_uri(self.config.models_from, self.context)


def _logged(row: dict[str, Any]) -> LoggedRequest:
    inputs = json.loads(row["inputs"]) if row["inputs"] else []
    output = json.loads(row["output"]) if row["output"] is not None else None
    records = tuple(inputs) if isinstance(inputs, list) else (inputs,)
    if isinstance(output, list) and len(output) == len(records):
        outputs: tuple[object, ...] = tuple(output)
    else:  # a failed request, or a model answering the whole request with one value
        outputs = (output,) * len(records)
    moment = row["ts"]
    return LoggedRequest(
        request_id=str(row["request_id"]),
        at=moment if moment.tzinfo else moment.replace(tzinfo=UTC),
        model_version=str(row["model_version"]),
        role=str(row["role"]),
        status=int(row["status"]),
        inputs=records,
        outputs=outputs,
    )


def _endpoint(spec: EndpointSpec) -> Endpoint:
    return Endpoint(
        spec.name,
        spec.url,
        spec.revision,
        TrafficSplit(dict(spec.weights), spec.shadows, sticky=spec.sticky),
    )


def _check_name(endpoint: str) -> None:
    if not endpoint or not all(ch.isalnum() or ch in "-_" for ch in endpoint):
        raise StackError(f"endpoint name {endpoint!r}: use letters, digits, '-' and '_'")


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; none found elsewhere)."""
    found: list[int] = []
    queue = [pid]
    while queue:
        current = queue.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found.extend(int(c) for c in children)
        queue.extend(int(c) for c in children)
    return found


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _get(url: str) -> int | None:
    import httpx

    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return None


def _get_json(url: str) -> dict[str, Any]:
    import httpx

    try:
        data: dict[str, Any] = httpx.get(url, timeout=2.0).json()
        return data
    except (httpx.HTTPError, ValueError):
        return {}


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"
