"""The Server role on BentoML: one `bentoml serve` process per endpoint, on 127.0.0.1.

An endpoint is a folder under `<home>/serving/<name>/` holding `endpoint.json` (the versions,
their schema and the traffic split), the server's pid and its log. Deploying starts the
process and waits for BentoML's `/readyz`; routing writes a new revision of the file, which
every worker puts in force within a second (no restart, no dropped request), and returns
once every worker has acknowledged it (acks.py); the versions a split needs are loaded in
every worker before it is written (a route that needs a load, such as a canary's first step
or a promotion, first writes a revision that stages it, its split unchanged). Undeploying
sends SIGTERM, which BentoML turns into a graceful shutdown (in-flight requests finish, the
prediction log is written).

A deploy or a route either takes effect or changes nothing, and fails as soon as the server
shows it cannot take effect: a worker that refuses the revision (it writes why, see app.py),
a worker that exits before the server is ready (BentoML's arbiter would restart it forever),
or the server itself exiting. A server that failed to start is killed with every process
below it and its folder removed; a refused route is undone by a revision with the previous
split. The error carries the server log's last lines from that attempt.

An endpoint's processes are one unit (family.py): the server, its workers, their challengers.
A worker exits with its server (lineage.py); whatever survives anyway is found by a marker in
its environment, its session and the port, and stopped by `undeploy` or a re-deploy, which
never starts a server beside a live one. `processes` says what runs and what the port
answers, for `mlstack rollout status`."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.contract.registry import ModelVersion
from stack.contract.serving import (
    Endpoint,
    EndpointProcesses,
    HealthReport,
    LoggedRequest,
    TrafficSplit,
)
from stack.errors import NotFound, StackError
from stack.plugins.manifest import AdapterContext
from stack.processes import alive
from stack_bentoml import family
from stack_bentoml.acks import SplitNotAcknowledged, load_factor, not_acknowledged, read_ack
from stack_bentoml.app import LOG_URL_ENV, REFUSAL_PREFIX, refusal_path
from stack_bentoml.config import BentoConfig
from stack_bentoml.models import import_version
from stack_bentoml.spec import (
    DEFAULT_DEADLINE_MS,
    EndpointSpec,
    VersionSpec,
    read_spec,
    write_spec,
)

SPEC_FILE = "endpoint.json"
PID_FILE = "server.pid"
LOG_FILE = "server.log"


class BentoServer:
    def __init__(self, config: BentoConfig | None, context: AdapterContext) -> None:
        self.config = config or BentoConfig()
        self.context = context
        self.root = context.home / "serving"
        self.predictions = context.home / "predictions"
        self.spill = context.home / "prediction-spill"  # rows the log refused (spill.py)
        self.bentoml_home = (context.home / self.config.bentoml_home).resolve()
        self._held = threading.local()
        self._examples: dict[str, bytes | None] = {}  # probe bodies by model folder

    @contextlib.contextmanager
    def _locked(self, endpoint: str) -> Iterator[None]:
        """One change to an endpoint at a time, across processes (an advisory lock on
        `serving/.<endpoint>.lock`): two deploys at once would otherwise start two servers
        on one spec, and two rollouts would each rewrite the spec without the other's
        version. Re-entrant within a thread (deploy routes a running endpoint)."""
        held: set[str] = self._held.__dict__.setdefault("names", set())
        if endpoint in held:
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{endpoint}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            held.add(endpoint)
            try:
                yield
            finally:
                held.discard(endpoint)
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- the role -----------------------------------------------------------------------

    def deploy(self, version: ModelVersion, *, endpoint: str) -> Endpoint:
        """Serve `version` alone on `endpoint`: start it, or re-route a running one to it."""
        _check_name(endpoint)
        with self._locked(endpoint):
            return self._deploy(version, endpoint)

    def _deploy(self, version: ModelVersion, endpoint: str) -> Endpoint:
        if self._running(endpoint):  # take over the live server; stop what it does not manage
            self._clear(endpoint, strays_only=True)
            self.add_version(version, endpoint=endpoint)
            return self.route(endpoint, TrafficSplit({version.ref: 1.0}))
        loaded = self._import(version)
        previous = self._clear(endpoint)  # a dead server's processes: never a second server
        spec = EndpointSpec(
            name=endpoint,
            revision=1,
            host=self.config.host,
            port=self._free_port(endpoint, previous),
            versions={version.ref: loaded},
            weights={version.ref: 1.0},
            ab_header=self.config.ab_header,
            log_dir=str((self.predictions / endpoint).resolve()),
            log_table=self.config.prediction_log.table if self.config.prediction_log else None,
            spill_dir=str((self.spill / endpoint).resolve()),
            max_body_bytes=self.config.max_body_bytes,
            max_rows=self.config.max_rows,
            log_flush_seconds=self.config.log_flush_seconds,
        )
        folder = self.root / endpoint
        for stale in folder.glob(f"{REFUSAL_PREFIX}*"):  # left by a server that died
            stale.unlink(missing_ok=True)
        write_spec(spec, self._spec_path(endpoint))
        self._start(spec)
        return _endpoint(spec)

    def add_version(self, version: ModelVersion, *, endpoint: str) -> None:
        """Make `version` (its files, its inputs checked) known to `endpoint`; the first route
        that needs it loads it in every worker before writing the split."""
        with self._locked(endpoint):
            self._add_version(version, endpoint)

    def _add_version(self, version: ModelVersion, endpoint: str) -> None:
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
        with self._locked(endpoint):
            return self._route(endpoint, split)

    def _route(self, endpoint: str, split: TrafficSplit) -> Endpoint:
        spec = self._spec(endpoint)
        if not self._running(endpoint):  # an orphaned worker would take it, unmanaged
            problems = "; ".join(self._census(endpoint, spec).problems)
            raise StackError(
                f"endpoint {endpoint!r} is not running ({problems}): the split is unchanged; "
                f"`mlstack undeploy {endpoint}` or a deploy clears what is left"
            )
        unknown = [r for r in [*split.weights, *split.shadows] if r not in spec.versions]
        if unknown:
            raise StackError(
                f"endpoint {endpoint!r} has no version {', '.join(unknown)} loaded; "
                f"loaded: {', '.join(spec.versions)} (add_version first)"
            )
        needed = _with_split(spec, split).loads() - spec.loads()
        if needed:  # loaded in every worker first (a revision of its own, the split unchanged)
            prepared = spec.model_copy(
                update={
                    "revision": spec.revision + 1,
                    "staged": (*spec.staged, *(ref for ref, own in sorted(needed) if own)),
                    "staged_in_worker": (
                        *spec.staged_in_worker,
                        *(ref for ref, own in sorted(needed) if not own),
                    ),
                }
            )
            self._put(prepared, spec)
            spec = prepared
        updated = _with_split(spec, split)
        self._put(updated, spec, loading=False)
        return _endpoint(updated)

    def _put(self, updated: EndpointSpec, previous: EndpointSpec, *, loading: bool = True) -> None:
        """Write `updated` and wait until every worker has it in force; on failure put
        `previous` back (as a new revision) and raise."""
        write_spec(updated, self._spec_path(updated.name))
        try:
            self._wait_for_revision(updated, loading=loading)
        except BaseException as exc:
            self._restore(previous, updated.revision + 1, exc)
            raise

    def _restore(self, previous: EndpointSpec, revision: int, cause: BaseException) -> None:
        """Put the split in force before a refused route back, as a new revision (a revision
        number is never reused, so a late refusal of the old one cannot be mistaken)."""
        restored = previous.model_copy(update={"revision": revision})
        write_spec(restored, self._spec_path(previous.name))
        try:
            self._wait_for_revision(restored, loading=False)
        except StackError as again:
            cause.add_note(f"restoring revision {previous.revision}'s split failed too: {again}")

    def health(self, endpoint: str, *, since: datetime | None = None) -> HealthReport:
        """Readiness, why the endpoint is degraded (census.degraded_reasons), and each
        version's figures from the prediction log since `since`."""
        from stack_bentoml.census import degraded_reasons
        from stack_bentoml.health import version_health

        spec = self._spec(endpoint)
        ready = self._running(endpoint) and _get(f"{spec.url}/readyz") == 200
        answer = _get_json(f"{spec.url}/endpoint") if ready else {}
        degraded = degraded_reasons(answer, self.spill / endpoint)
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
            degraded=tuple(degraded),
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
        """Stop every process of `endpoint` (its server gracefully; any left over by a dead
        server too) and remove its folder. NotFound when there is no such endpoint;
        StackError naming the processes that would not stop (the folder is kept)."""
        _check_name(endpoint)  # a name is a folder under serving/: never a path out of it
        with self._locked(endpoint):
            self._spec(endpoint)
            self._clear(endpoint)
            shutil.rmtree(self.root / endpoint, ignore_errors=True)

    def probe(self, endpoint: str, ref: str, *, timeout_s: float) -> str | None:
        """One request of `ref`'s input example answered by `ref` alone (pinned.py): None
        when the endpoint answered, else why it did not (the Prober capability)."""
        from stack_bentoml.pinned import send_probe
        from stack_bentoml.probe import example_body

        spec = self._spec(endpoint)
        version = spec.versions.get(ref)
        if version is None:
            raise NotFound(f"{ref} is not loaded on endpoint {endpoint!r}")
        if version.model_dir not in self._examples:  # a folder per version: never stale
            self._examples[version.model_dir] = example_body(
                Path(version.model_dir), version.inputs
            )
        body = self._examples[version.model_dir]
        if body is None:
            raise StackError(f"{ref} has no input example the endpoint takes: not probed")
        return send_probe(spec.url, ref, body, timeout_s)

    def processes(self, endpoint: str | None = None) -> list[EndpointProcesses]:
        """Each endpoint with a folder here, running or not (or `endpoint` alone, NotFound
        when it has none): its processes found on the machine, what its port answers."""
        if endpoint is not None:
            _check_name(endpoint)
            return [self._census(endpoint, self._spec(endpoint))]
        if not self.root.is_dir():
            return []
        return [
            self._census(path.parent.name, read_spec(path))
            for path in sorted(self.root.glob(f"*/{SPEC_FILE}"))
        ]

    def _census(self, endpoint: str, spec: EndpointSpec) -> EndpointProcesses:
        from stack_bentoml.census import describe

        server = self._pid(endpoint)
        found = family.find(self._marker(endpoint), spec.port)
        answer = _get_json(f"{spec.url}/endpoint") if found.port_held else {}
        isolated = self.root / endpoint / "isolated"
        return describe(spec, server, found, answer, isolated, self.spill / endpoint)

    def _clear(self, endpoint: str, *, strays_only: bool = False) -> EndpointSpec | None:
        """Stop the endpoint's processes (with `strays_only`, those its live server does not
        manage); returns the endpoint's spec as it was, if any. Raises StackError naming any
        process that would not stop."""
        path = self._spec_path(endpoint)
        previous = read_spec(path) if path.is_file() else None
        port = previous.port if previous else 0
        server = self._pid(endpoint)
        found = family.find(self._marker(endpoint), port)
        if strays_only:
            live = server if server in {m.pid for m in found.members} else None
            found = family.Family(tuple(found.strays(live)), found.strangers, found.port_held)
            server = None
        left = family.stop(found, server, graceful=30.0)
        if left:
            pids = ", ".join(f"{m.role} pid {m.pid}" for m in left)
            raise StackError(f"endpoint {endpoint!r}: {pids} would not stop, even on SIGKILL")
        if not strays_only:  # the challengers' pid files of the processes just stopped
            for stale in (self.root / endpoint / "isolated").glob("*.pid"):
                stale.unlink(missing_ok=True)
        return previous

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
        """Start the server and wait until it is ready; otherwise kill it, remove its folder
        and raise with the reason and the server log's last lines."""
        folder = self.root / spec.name
        log_path = folder / LOG_FILE
        env = {
            **os.environ,
            family.SPEC_ENV: str(self._marker(spec.name)),
            family.WORKERS_ENV: str(self.config.workers),
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
        try:
            with open(log_path, "ab") as log:
                offset = log.tell()  # this start's lines only, in the error
                process = subprocess.Popen(
                    command,
                    cwd=folder,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except BaseException:
            self._forget(spec.name)
            raise
        try:
            (folder / PID_FILE).write_text(str(process.pid))
            failure = self._await_ready(spec, process)
        except BaseException:  # Ctrl-C while it starts: no server is left behind
            _kill_server(process)
            self._forget(spec.name)
            raise
        if failure is None:
            return
        _kill_server(process)
        tail = _tail(log_path, offset=offset)  # before the folder (and the log) goes
        self._forget(spec.name)
        raise StackError(
            f"endpoint {spec.name!r} did not start: {failure}\n"
            f"--- the server's log, last lines:\n{tail}"
        )

    def _await_ready(self, spec: EndpointSpec, process: subprocess.Popen[bytes]) -> str | None:
        """None once `/readyz` answers; else why the server will never be ready, as soon as
        that shows: a worker refused the revision, a worker exited before the server was
        ready, the server exited, or `ready_timeout_seconds` passed."""
        refusal = refusal_path(self.root / spec.name, spec.revision)
        workers = _Workers(process.pid)
        deadline = time.monotonic() + self.config.ready_timeout_seconds
        while time.monotonic() < deadline:
            if refusal.is_file():
                workers.wait_for_exit(10.0)  # so that BentoML's own lines reach the log
                return _first_line(refusal)
            if process.poll() is not None:
                return f"the server exited (code {process.returncode})"
            if workers.one_exited():
                if refusal.is_file():  # written just before the worker exited
                    return _first_line(refusal)
                return "a worker exited before the server was ready"
            if _get(f"{spec.url}/readyz") == 200:
                return None
            time.sleep(0.25)
        return f"not ready after {self.config.ready_timeout_seconds:g} s (ready_timeout_seconds)"

    def _forget(self, endpoint: str) -> None:
        shutil.rmtree(self.root / endpoint, ignore_errors=True)

    def _pid(self, endpoint: str) -> int | None:
        path = self.root / endpoint / PID_FILE
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    def _running(self, endpoint: str) -> bool:
        """Its server runs (the recorded pid, alive and carrying the endpoint's marker)."""
        pid = self._pid(endpoint)
        return (
            pid is not None
            and alive(pid)
            and self._spec_path(endpoint).is_file()
            and family.marked(pid, self._marker(endpoint))
        )

    def _wait_for_revision(self, spec: EndpointSpec, *, loading: bool) -> None:
        """Until every worker of the server has put `spec.revision` (or a later one) in force
        (acks.py): each looks at the file every 0.1 s. A revision that loads versions
        (`loading`) may take `ready_timeout_seconds`, as may a worker still starting; a split
        alone takes `split_ack_seconds` times the machine's load per core (at least 1).
        A worker that refuses the revision, a server that stops, or the wait running out
        (SplitNotAcknowledged, naming the workers that did not answer) raise StackError with
        the reason and the server log's last lines."""
        folder = self.root / spec.name
        refusal = refusal_path(folder, spec.revision)
        offset = _size(folder / LOG_FILE)
        began = time.monotonic()
        split_s = self.config.split_ack_seconds * load_factor()
        server = self._pid(spec.name)
        expected = family.worker_count(server) if server is not None else 1
        error: type[StackError] = StackError
        while True:
            if refusal.is_file():
                failure = _first_line(refusal)
                break
            if server is None or not self._running(spec.name):
                failure = "the server stopped"
                break
            workers = family.workers(server)
            waiting = not_acknowledged(folder, workers, spec.revision)
            if len(workers) >= expected and not waiting:
                return
            starting = len(workers) < expected or any(read_ack(folder, p) is None for p in waiting)
            waited = time.monotonic() - began
            if waited >= (self.config.ready_timeout_seconds if loading or starting else split_s):
                error = SplitNotAcknowledged
                missing = expected - len(workers)
                failure = _unacknowledged(folder, waiting, missing, waited)
                break
            time.sleep(0.05)
        time.sleep(0.5)  # the worker's own lines after a refusal
        raise error(
            f"endpoint {spec.name!r} did not take revision {spec.revision}: {failure}\n"
            f"--- the server's log, last lines:\n{_tail(folder / LOG_FILE, offset=offset)}"
        )

    # -- files --------------------------------------------------------------------------

    def _spec_path(self, endpoint: str) -> Path:
        return self.root / endpoint / SPEC_FILE

    def _marker(self, endpoint: str) -> Path:
        """The endpoint file's absolute path: in the environment of each of its processes."""
        return self._spec_path(endpoint).resolve()

    def _spec(self, endpoint: str) -> EndpointSpec:
        path = self._spec_path(endpoint)
        if not path.is_file():
            raise NotFound(f"no endpoint {endpoint!r} (deployed: {self._names() or 'none'})")
        return read_spec(path)

    def _names(self) -> str:
        return ", ".join(e.name for e in self.endpoints())

    def _free_port(self, endpoint: str, previous: EndpointSpec | None = None) -> int:
        """The port the endpoint had (its processes stopped), if free; else the first free
        one from the configured port that no other endpoint holds."""
        if previous is not None and _bindable(self.config.host, previous.port):
            return previous.port
        taken = {
            read_spec(p).port for p in self.root.glob(f"*/{SPEC_FILE}") if p.parent.name != endpoint
        }
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
        traffic=str(row.get("traffic") or "live"),
    )


def _with_split(spec: EndpointSpec, split: TrafficSplit) -> EndpointSpec:
    """The next revision of `spec`, serving `split` (nothing staged: it is in force now)."""
    return spec.model_copy(
        update={
            "revision": spec.revision + 1,
            "weights": dict(split.weights),
            "shadows": tuple(split.shadows),
            "sticky": split.sticky,
            "champion": split.champion,
            "challenger_deadline_ms": split.deadline_ms or DEFAULT_DEADLINE_MS,
            "staged": (),
            "staged_in_worker": (),
        }
    )


def _unacknowledged(folder: Path, waiting: list[int], missing: int, waited: float) -> str:
    """Why the wait ended: the workers that did not put the revision in force (and what
    each serves), and how many the server should run but does not."""
    named = []
    for pid in waiting:
        ack = read_ack(folder, pid)
        serves = f"serves revision {ack.revision}" if ack is not None else "serves none yet"
        named.append(f"worker pid {pid} ({serves})")
    if missing > 0:
        named.append(f"{missing} worker(s) not running")
    return f"split not acknowledged after {waited:.1f} s: {', '.join(named)}"


def _endpoint(spec: EndpointSpec) -> Endpoint:
    return Endpoint(
        spec.name,
        spec.url,
        spec.revision,
        TrafficSplit(
            dict(spec.weights),
            spec.shadows,
            sticky=spec.sticky,
            champion=spec.champion,
            deadline_ms=spec.challenger_deadline_ms,
        ),
    )


def _check_name(endpoint: str) -> None:
    if not endpoint or not all(ch.isalnum() or ch in "-_" for ch in endpoint):
        raise StackError(f"endpoint name {endpoint!r}: use letters, digits, '-' and '_'")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # as the server binds (circus): connections in TIME_WAIT do not hold the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


def _get_json(url: str, timeout: float = 2.0) -> dict[str, Any]:
    import httpx

    try:
        data: dict[str, Any] = httpx.get(url, timeout=timeout).json()
        return data
    except (httpx.HTTPError, ValueError):
        return {}


def _tail(path: Path, lines: int = 30, *, offset: int = 0) -> str:
    """The last `lines` lines of the log from byte `offset` on."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(the server wrote nothing)"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _first_line(path: Path) -> str:
    try:
        return path.read_text(errors="replace").partition("\n")[0]
    except OSError:
        return "a worker refused the revision"


class _Workers:
    """The server's worker processes (its children, Linux /proc): whether one exited. A
    worker that fails to start exits, and BentoML's arbiter starts another, forever."""

    def __init__(self, server: int) -> None:
        self.server = server
        self.seen: set[int] = set()

    def one_exited(self) -> bool:
        children = set(family.children(self.server))
        gone = bool(self.seen - children) or any(family.zombie(pid) for pid in children)
        self.seen |= children
        return gone

    def wait_for_exit(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.one_exited():
            time.sleep(0.1)


def _kill_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:  # once reaped, its pid may be another process's
        _kill_tree(process.pid)
        process.poll()  # reaped by _kill_tree: settles the Popen


def _kill_tree(pid: int) -> None:
    """Kill a server that never served (no graceful shutdown to wait for) and every process
    below it. Each is stopped first, until no new one appears, so that none can start
    another (the arbiter restarts workers) between the listing and the kill."""
    seen: list[int] = []
    members = [pid]
    while members:
        for member in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member, signal.SIGSTOP)
        seen.extend(members)
        members = [p for p in family.descendants(pid) if p not in seen]
    for member in seen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(alive(p) and not family.zombie(p) for p in seen):
        time.sleep(0.05)
    alive(pid)  # reap the server, our child
