"""The Server role: deploy model versions, route traffic between them, report health."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, get_args, runtime_checkable

from stack.contract.registry import ModelVersion
from stack.errors import StackError


@dataclass(frozen=True, slots=True)
class TrafficSplit:
    """Live weights per version ref (`churn@3`), summing to 1, plus shadow copies.

    A shadow version receives a copy of every request; its answers are logged, never returned.
    `sticky` (A/B) assigns each subject (a request header) to one version for good, instead
    of drawing per request. `champion` is the version a rollout protects (the one serving):
    a server may run the others apart from it (in processes of their own), also when a
    challenger takes all the traffic; None: the heaviest. `deadline_ms`: how long a server
    waits on a challenger's answer before the champion answers instead (the miss counts
    against the challenger); None: the server's default.
    """

    weights: Mapping[str, float]
    shadows: tuple[str, ...] = ()
    sticky: bool = False
    champion: str | None = field(default=None, compare=False)
    deadline_ms: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.weights:
            raise StackError("a traffic split needs at least one live version")
        if any(w < 0 for w in self.weights.values()):
            raise StackError(f"traffic weights must not be negative: {dict(self.weights)}")
        total = sum(self.weights.values())
        if abs(total - 1.0) > 1e-9:
            raise StackError(f"traffic weights must sum to 1, got {total:g}")
        if self.champion is not None and self.champion not in self.weights:
            raise StackError(f"the champion {self.champion} is not one of the split's versions")
        if self.deadline_ms is not None and not self.deadline_ms > 0:
            raise StackError(f"a deadline is a positive number of ms, got {self.deadline_ms}")
        overlap = set(self.shadows) & set(self.weights)
        if overlap:
            raise StackError(f"a version cannot be both live and shadow: {sorted(overlap)}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    revision: int
    split: TrafficSplit


@dataclass(frozen=True, slots=True)
class VersionHealth:
    """One version's answers in a window: the requests first routed to it (or, for a
    shadow, copied to it), its failures among them (a missed deadline included), the p99
    latency of its answers in ms, and for a shadow, the share of its answers that differ
    from the live answer. `fallbacks`: answers it gave for requests another version failed
    (not its requests); `input_faults`: its requests that every version failed (not its
    errors); `error_kinds`: its errors by exception name (`DeadlineMissed`, `ValueError`),
    so that a verdict says what failed, not only how often."""

    requests: int
    errors: int
    p99_latency_ms: float | None
    role: str = "live"
    disagreement: float | None = None
    fallbacks: int = 0
    input_faults: int = 0
    error_kinds: Mapping[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class HealthReport:
    """An endpoint's readiness and the requests it answered in a window. `degraded`: why it
    answers but its figures may be short (its prediction log refusing rows, which wait to
    be replayed): a verdict on them lacks evidence. `failing`: versions that fail outside
    the app, by ref, with why (`pods crash-looping (CrashLoopBackOff, 4 restarts)`, an image
    that never pulls, a readiness probe failing): a breach, whatever the log says."""

    endpoint: str
    ready: bool
    requests: int
    error_rate: float
    p99_latency_ms: float | None
    versions: Mapping[str, VersionHealth] = field(default_factory=dict)
    degraded: tuple[str, ...] = ()
    failing: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Router(Protocol):
    """What a rollout drives: versions put in front of traffic, the split moved between
    them, the health evidence the judge reads, and what serves now. The local router is the
    stack's Server (processes on this machine); the cluster's applies Kubernetes objects
    (ClusterManifests.cluster_router). One RolloutController drives either."""

    def deploy(self, version: ModelVersion, *, endpoint: str) -> Endpoint:
        """Serve `version` alone on `endpoint` (creating it), and return the new revision."""
        ...

    def add_version(self, version: ModelVersion, *, endpoint: str) -> None:
        """Load `version` beside the live ones on `endpoint`, taking no traffic until routed."""
        ...

    def route(self, endpoint: str, split: TrafficSplit) -> Endpoint:
        """Change the traffic split among versions loaded on the endpoint (a new revision).

        A split naming a version that was never deployed or added is refused, unchanged."""
        ...

    def health(self, endpoint: str, *, since: datetime | None = None) -> HealthReport:
        """Readiness, and the requests answered since `since` (all logged ones when None)."""
        ...

    def endpoints(self) -> list[Endpoint]: ...

    def undeploy(self, endpoint: str) -> None: ...


@runtime_checkable
class RolloutHold(Protocol):
    """A Router that keeps rollouts on one endpoint apart across machines (the cluster's: a
    Kubernetes Lease). The controller holds the endpoint for a whole deploy; while another
    process holds it, `hold` raises a StackError naming the holder, having changed nothing.
    Every deploy also holds the spine lock `rollouts on endpoint:<name>` (the controller's,
    for any router); this hold adds the router's own arbitration beside it."""

    def hold(self, endpoint: str) -> AbstractContextManager[object]: ...


@runtime_checkable
class Server(Router, Protocol):
    """The server role: the local Router (see Router); its optional protocols follow."""


#: What a request is, as its client tagged it: `live` (real users; the default), `bake`
#: (sent to exercise a rollout: its health counts it), `test` (counted by neither a
#: rollout's health nor monitoring), `synthetic` (a load generator's: counted by a
#: rollout's health) or `probe` (a rollout controller's own request, pinned to one version:
#: the controller counts it itself; neither health nor monitoring does). Monitoring windows
#: keep `live` alone unless the recipe says more.
TrafficKind = Literal["live", "bake", "test", "synthetic", "probe"]
TRAFFIC_KINDS: tuple[TrafficKind, ...] = get_args(TrafficKind)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the endpoint logged it: the records sent and one output per record.

    `role` is `live`, `fallback` (answered by another version after a failure), `shadow`
    (a copy, never returned) or `feedback` (labels sent to `/feedback` for an earlier
    request: `outputs` holds them, indexed by the row they label). `traffic` is the
    request's tag (one of TRAFFIC_KINDS; requests logged before tags read as `live`).
    `latency_ms`: the time from its arrival to its answer, in milliseconds (None where the
    log keeps none)."""

    request_id: str
    at: datetime
    model_version: str
    role: str
    status: int
    inputs: tuple[Mapping[str, object], ...]
    outputs: tuple[object, ...]
    traffic: str = "live"
    latency_ms: float | None = None


@runtime_checkable
class PredictionLogReader(Protocol):
    """Optional: the requests an endpoint logged between `since` and `until`, oldest first;
    what monitoring compares with the training reference and joins to late labels.

    `answered_among`: those of `request_ids` that the endpoint answered (a `live` or
    `fallback` row with status 200; a shadow's answer or a failure is not one), all time.
    What `mlstack labels ingest` checks a label file's ids against: the log is asked about
    those ids only (an index lookup, or a scan of the id, role and status columns), never
    read whole. [] ids: an empty set; an endpoint never logged: an empty set."""

    def logged(
        self, endpoint: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[LoggedRequest]: ...

    def answered_among(self, endpoint: str, request_ids: Collection[str]) -> set[str]: ...


@runtime_checkable
class ClusterManifests(Protocol):
    """Optional: the Kubernetes objects that serve `versions` on `endpoint` with `split`,
    and the Router that applies them to the cluster the kubeconfig names (`KUBECONFIG`, or
    the pod's own service account inside the cluster)."""

    def manifests(
        self, endpoint: str, versions: Sequence[ModelVersion], split: TrafficSplit
    ) -> list[dict[str, object]]: ...

    def cluster_router(self) -> Router: ...

    def cluster_warnings(self, endpoint: str | None = None) -> tuple[ClusterWarning, ...]:
        """What in the stack file makes its cluster path wrong or fragile (empty: nothing);
        with `endpoint`, also what sizes that endpoint wrongly (a misspelt per-endpoint key)."""
        ...


@dataclass(frozen=True, slots=True)
class ClusterWarning:
    """Something in the stack file that makes the cluster path wrong or fragile. `field` is
    the stack file's field to set (`server.prediction_log`), `message` says what goes wrong
    and what to write there; `blocks_rollout`: a rollout on the cluster could never be
    judged without it, so `mlstack deploy --target kubernetes` refuses (a dry run and a
    package build only warn)."""

    field: str
    message: str
    blocks_rollout: bool = False


@dataclass(frozen=True, slots=True)
class ServedProcess:
    """One process of an endpoint, as found on the machine. `role` is `server`, `worker`,
    `challenger` (a version in a process of its own) or `helper`; `listening`: it holds the
    endpoint's port; `stray`: it is not below the endpoint's live server (left by one that
    died), so nothing manages it."""

    pid: int
    role: str
    listening: bool
    stray: bool = False


@dataclass(frozen=True, slots=True)
class EndpointProcesses:
    """What runs for an endpoint, found on the machine and asked of its port, not read from
    a pid file. `revision` is the one written (the endpoint's file), `answering` the one its
    port answered with (None: nothing answered); `running`: its server is alive and the port
    answers for it. `problems` are sentences naming pids and the port (`server pid 81 is
    dead`, `left over from a dead server (nothing manages them): worker pid 93 (holds
    :3000)`). `degraded` are those of them that say it answers but is not whole (its
    prediction log refusing rows, rows waiting to be replayed into it): what monitoring
    alerts on."""

    endpoint: str
    url: str
    revision: int
    answering: int | None
    running: bool
    processes: tuple[ServedProcess, ...] = ()
    problems: tuple[str, ...] = ()
    degraded: tuple[str, ...] = ()


@runtime_checkable
class ProcessInspector(Protocol):
    """Optional: the processes of each endpoint this server holds state for, running or
    not (`endpoint` narrows it to one: NotFound when there is no such endpoint)."""

    def processes(self, endpoint: str | None = None) -> list[EndpointProcesses]: ...


@runtime_checkable
class Prober(Protocol):
    """Optional: send endpoint `endpoint` one request answered by version `ref` alone (its
    input example, tagged `probe`), to see failures that never reach the endpoint's own
    records. None when an answer came (any HTTP status: what the endpoint did with it is
    in its log); else why none came, in a few words (`connection reset`, `connection
    refused`, `no answer within 15 s`). NotFound for an unknown endpoint or version;
    StackError when `ref` cannot be probed (no input example)."""

    def probe(self, endpoint: str, ref: str, *, timeout_s: float) -> str | None: ...


@dataclass(frozen=True)
class Package:
    """A version packaged for a cluster: `tag` names the artifact (a bento, `mlstack-churn:v2`),
    `image` the container image the cluster's manifests run for that version, `command` the
    argv that builds `image` from the artifact, run with `env` added to the environment (the
    server's own settings, such as where its store is: no user exports them), `bundled` the
    files of packages no index holds that travel inside the artifact (wheels); `replaced`:
    an artifact of that tag was there before and this build replaced it (the tag follows
    the version, the content the stack file too)."""

    tag: str
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    bundled: tuple[str, ...] = ()
    replaced: bool = False

    def shell(self) -> str:
        """`command` as one line a POSIX shell runs, `env` set in front of it."""
        import shlex

        assignments = [f"{name}={shlex.quote(value)}" for name, value in self.env.items()]
        return " ".join([*assignments, shlex.join(self.command)])


@runtime_checkable
class Packager(Protocol):
    """Optional: package `version` served as `endpoint` into a deployable artifact, and say
    how its image is built (Package). StackError when it cannot be packaged."""

    def build(self, version: ModelVersion, *, endpoint: str) -> Package: ...
