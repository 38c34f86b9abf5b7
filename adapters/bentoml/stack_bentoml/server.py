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
or the server itself exiting (supervision.py). A server that failed to start is killed with
every process below it and its folder removed; a refused route is undone by a revision with
the previous split. The error carries the server log's last lines from that attempt.

An endpoint's processes are one unit (family.py): the server, its workers, their challengers.
A worker exits with its server (lineage.py); whatever survives anyway is found by a marker in
its environment, its session and the port, and stopped by `undeploy` or a re-deploy, which
never starts a server beside a live one. `processes` says what runs and what the port
answers, for `mlstack rollout status`. `build` packages a version for the cluster
(packaging.py), `manifests` says how the cluster runs it (kubernetes.py)."""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from stack.contract.registry import ModelVersion
from stack.contract.serving import (
    ClusterWarning,
    Endpoint,
    EndpointProcesses,
    HealthReport,
    LoggedRequest,
    Package,
    Router,
    TrafficSplit,
)
from stack.errors import NotFound, StackError
from stack.plugins.manifest import AdapterContext
from stack_bentoml import family
from stack_bentoml.config import BentoConfig
from stack_bentoml.locks import flocked
from stack_bentoml.logread import answered_among, log_batches, log_rows, logged_request
from stack_bentoml.models import import_version
from stack_bentoml.refusals import REFUSAL_PREFIX
from stack_bentoml.spec import (
    DEFAULT_DEADLINE_MS,
    SPEC_FILE,
    EndpointSpec,
    VersionSpec,
    read_spec,
    write_spec,
)
from stack_bentoml.supervision import (
    PortTaken,
    Supervisor,
    free_port,
    get_json,
    get_status,
    port_lock,
)

BIND_ATTEMPTS = 3  # starts on a newly chosen port when another program took the chosen one


class BentoServer:
    def __init__(self, config: BentoConfig | None, context: AdapterContext) -> None:
        self.config = config or BentoConfig()
        self.context = context
        self.root = context.home / "serving"
        self.predictions = context.home / "predictions"
        self.spill = context.home / "prediction-spill"  # rows the log refused (spill.py)
        self.bentoml_home = (context.home / self.config.bentoml_home).resolve()
        self.supervisor = Supervisor(self.root, self.config, self._bentoml_env())
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
        with flocked(self.root / f".{endpoint}.lock"):
            held.add(endpoint)
            try:
                yield
            finally:
                held.discard(endpoint)

    # -- the role -----------------------------------------------------------------------

    def deploy(self, version: ModelVersion, *, endpoint: str) -> Endpoint:
        """Serve `version` alone on `endpoint`: start it, or re-route a running one to it."""
        _check_name(endpoint)
        with self._locked(endpoint):
            return self._deploy(version, endpoint)

    def _deploy(self, version: ModelVersion, endpoint: str) -> Endpoint:
        if self.supervisor.running(endpoint):  # take over the live server, stop its strays
            self._clear(endpoint, strays_only=True)
            self.add_version(version, endpoint=endpoint)
            return self.route(endpoint, TrafficSplit({version.ref: 1.0}))
        loaded = self._import(version)
        previous = self._clear(endpoint)  # a dead server's processes: never a second server
        folder = self.root / endpoint
        for stale in folder.glob(f"{REFUSAL_PREFIX}*"):  # left by a server that died
            stale.unlink(missing_ok=True)
        for attempt in range(1, BIND_ATTEMPTS + 1):
            spec = self._place(version.ref, loaded, endpoint, previous)
            try:
                self.supervisor.start(spec)
            except PortTaken:
                if attempt == BIND_ATTEMPTS:
                    raise
                previous = None  # that port is someone else's now
                continue
            return _endpoint(spec)
        raise AssertionError("unreachable")

    def _place(
        self, ref: str, loaded: VersionSpec, endpoint: str, previous: EndpointSpec | None
    ) -> EndpointSpec:
        """The new server's spec, written, on a port no other endpoint holds."""
        with port_lock(self.root):  # another endpoint's deploy may be choosing one now
            spec = EndpointSpec(
                name=endpoint,
                revision=1,
                host=self.config.host,
                port=free_port(self.root, self.config, endpoint, previous),
                versions={ref: loaded},
                weights={ref: 1.0},
                ab_header=self.config.ab_header,
                log_dir=str((self.predictions / endpoint).resolve()),
                log_table=self.config.prediction_log.table if self.config.prediction_log else None,
                spill_dir=str((self.spill / endpoint).resolve()),
                max_body_bytes=self.config.max_body_bytes,
                max_rows=self.config.max_rows,
                log_flush_seconds=self.config.log_flush_seconds,
            )
            write_spec(spec, self.supervisor.spec_path(endpoint))
        return spec

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
            self.supervisor.spec_path(endpoint),
        )

    def route(self, endpoint: str, split: TrafficSplit) -> Endpoint:
        with self._locked(endpoint):
            return self._route(endpoint, split)

    def _route(self, endpoint: str, split: TrafficSplit) -> Endpoint:
        spec = self._spec(endpoint)
        if not self.supervisor.running(endpoint):  # an orphaned worker would take it, unmanaged
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
        write_spec(updated, self.supervisor.spec_path(updated.name))
        try:
            self.supervisor.wait_for_revision(updated, loading=loading)
        except BaseException as exc:
            self._restore(previous, updated.revision + 1, exc)
            raise

    def _restore(self, previous: EndpointSpec, revision: int, cause: BaseException) -> None:
        """Put the split in force before a refused route back, as a new revision (a revision
        number is never reused, so a late refusal of the old one cannot be mistaken)."""
        restored = previous.model_copy(update={"revision": revision})
        write_spec(restored, self.supervisor.spec_path(previous.name))
        try:
            self.supervisor.wait_for_revision(restored, loading=False)
        except StackError as again:
            cause.add_note(f"restoring revision {previous.revision}'s split failed too: {again}")

    def health(self, endpoint: str, *, since: datetime | None = None) -> HealthReport:
        """Readiness, why the endpoint is degraded (census.degraded_reasons), and each
        version's figures from the prediction log since `since`."""
        from stack_bentoml.census import degraded_reasons
        from stack_bentoml.health import health_report

        spec = self._spec(endpoint)
        ready = self.supervisor.running(endpoint) and get_status(f"{spec.url}/readyz") == 200
        answer = get_json(f"{spec.url}/endpoint") if ready else {}
        degraded = degraded_reasons(answer, self.spill / endpoint)
        rows = log_rows(self.config, self.predictions, endpoint, since)
        return health_report(endpoint, rows, ready=ready, degraded=degraded)

    def logged(
        self, endpoint: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[LoggedRequest]:
        """The endpoint's prediction log (answers, shadow answers, feedback), oldest first."""
        _check_name(endpoint)
        return [
            logged_request(row)
            for row in log_rows(self.config, self.predictions, endpoint, since, until)
        ]

    def answered_among(self, endpoint: str, request_ids: Collection[str]) -> set[str]:
        """Those of `request_ids` the endpoint answered (live or fallback, status 200), all
        time, asked of its log by id (`PredictionLogReader.answered_among`)."""
        _check_name(endpoint)
        return answered_among(self.config, self.predictions, endpoint, request_ids)

    def log_batches(
        self,
        endpoint: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_rows: int = 65_536,
    ) -> Iterator[Any]:
        """The endpoint's prediction log as pyarrow RecordBatches of at most `batch_rows`
        rows (`stack.monitoring.stream.PredictionLogScanner`): what `monitor run` streams."""
        _check_name(endpoint)
        yield from log_batches(self.config, self.predictions, endpoint, since, until, batch_rows)

    def endpoints(self) -> list[Endpoint]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob(f"*/{SPEC_FILE}")):
            if self.supervisor.running(path.parent.name):
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

        server = self.supervisor.pid(endpoint)
        found = family.find(self.supervisor.marker(endpoint), spec.port)
        answer = get_json(f"{spec.url}/endpoint") if found.port_held else {}
        isolated = self.root / endpoint / "isolated"
        return describe(spec, server, found, answer, isolated, self.spill / endpoint)

    def _clear(self, endpoint: str, *, strays_only: bool = False) -> EndpointSpec | None:
        """Stop the endpoint's processes (with `strays_only`, those its live server does not
        manage); returns the endpoint's spec as it was, if any. Raises StackError naming any
        process that would not stop."""
        path = self.supervisor.spec_path(endpoint)
        previous = read_spec(path) if path.is_file() else None
        port = previous.port if previous else 0
        server = self.supervisor.pid(endpoint)
        found = family.find(self.supervisor.marker(endpoint), port)
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

    def build(self, version: ModelVersion, *, endpoint: str) -> Package:
        """`bentoml build` of `version` served as `endpoint` (for the image the cluster runs),
        offline: mlstack's packages inside as wheels, the others listed, not locked against
        an index. Returns the bento's tag and the `bentoml containerize` command (this
        stack's BENTOML_HOME set) that makes the image `kubernetes.image` names."""
        from stack_bentoml.packaging import build_bento

        _check_name(endpoint)
        loaded = self._import(version)
        return build_bento(
            self.config, version, loaded, endpoint=endpoint, bentoml_env=self._bentoml_env()
        )

    def _bentoml_env(self) -> dict[str, str]:
        return {"BENTOML_HOME": str(self.bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}

    def manifests(
        self, endpoint: str, versions: Sequence[ModelVersion], split: TrafficSplit
    ) -> list[dict[str, object]]:
        """The cluster path: Deployments, Services, autoscalers, budgets, one HTTPRoute."""
        from stack_bentoml.kubernetes import manifests

        return manifests(self.config.kubernetes, endpoint, versions, split)

    def cluster_warnings(self, endpoint: str | None = None) -> tuple[ClusterWarning, ...]:
        """What in the stack file makes the cluster path wrong or fragile (packaging.py):
        no prediction log in PostgreSQL (blocks a rollout), an image with no registry, a
        misspelt `endpoints` key for `endpoint`."""
        from stack_bentoml.packaging import cluster_warnings

        return cluster_warnings(self.config, endpoint)

    def cluster_router(self) -> Router:
        """The Router that applies these manifests to the cluster the kubeconfig names
        (`kubernetes.kubeconfig`, else `KUBECONFIG`, else the pod's service account), its
        health read from the same prediction log as here (cluster.py)."""
        from stack_bentoml.cluster import ClusterRouter
        from stack_bentoml.kubeapi import KubeApi

        target = self.config.kubernetes
        kubeconfig = target.kubeconfig and str(self.context.base_dir / target.kubeconfig)
        api = KubeApi.connect(kubeconfig, target.context)
        return ClusterRouter(self.config, api, self.predictions)

    # -- files --------------------------------------------------------------------------

    def _spec(self, endpoint: str) -> EndpointSpec:
        path = self.supervisor.spec_path(endpoint)
        if not path.is_file():
            raise NotFound(f"no endpoint {endpoint!r} (deployed: {self._names() or 'none'})")
        return read_spec(path)

    def _names(self) -> str:
        return ", ".join(e.name for e in self.endpoints())

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
