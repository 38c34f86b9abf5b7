"""An endpoint's Prometheus metrics, served on `/metrics` by whichever worker is asked.

Each worker records into prometheus_client's multiprocess files in the endpoint's own
folder (`<endpoint>/metrics`, given as `MLSTACK_METRICS_DIR`, emptied by the supervisor
before the server starts, as prometheus_client's documentation asks), and a scrape sums
every worker's files, the dead ones' counters included. BentoML points every server at one
shared `PROMETHEUS_MULTIPROC_DIR` that each `bentoml serve` empties at start: two endpoints
there would wipe each other's counts, hence a folder per endpoint.

A request only adds to this worker's tallies in memory (a dict lookup and three integer
additions); a thread moves them into prometheus_client's files once a second (and before a
scrape this worker answers, and at exit), with the gauges a request does not move (the
prediction log's lag, rows dropped). Writing the files per request (a lock and an mmap write
per value) cost about 7% of a request's CPU; bench/metrics.py measures the difference.

Metrics are optional: a worker that cannot write its files (the folder cannot be made, a
full disk, no permission) serves anyway with its metrics off. `from_environment` raises
MetricsUnavailable at start, and a write that fails later turns the worker's metrics off
(`fault`) and never reaches the request; either way the server log says so once and the
worker's `/metrics` answers 503 naming the folder."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stack_bentoml.predictlog import LogOutage

METRICS_ENV = "MLSTACK_METRICS_DIR"
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
#: request latency buckets, seconds: a sklearn predict is well under a millisecond, a
#: challenger in its own process a few, a large pyfunc model up to seconds
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UPDATE_SECONDS = 1.0

#: every metric an endpoint exports: name -> (type, help); the dashboards and rules name
#: only these (tests/observability/test_dashboards.py)
ENDPOINT_METRICS: dict[str, tuple[str, str]] = {
    "mlstack_endpoint_requests_total": (
        "counter",
        "Prediction requests answered, by the version that answered, its role and the HTTP "
        "status; a request refused (4xx) or that no version could answer (500) has the version "
        "and role empty, unless it pinned a version.",
    ),
    "mlstack_endpoint_rejected_requests_total": (
        "counter",
        "Prediction requests refused before any version saw them (4xx), by HTTP status and "
        "reason: bad_header, unsupported_media_type, body_too_large, empty_body, too_deep, "
        "invalid_payload.",
    ),
    "mlstack_endpoint_request_duration_seconds": (
        "histogram",
        "Time from a request's arrival to its answer, by the version that answered and role.",
    ),
    "mlstack_endpoint_version_errors_total": (
        "counter",
        "Predictions a version failed (an exception, or past its deadline), by version and "
        "role; a failed challenger's request is still answered by the champion.",
    ),
    "mlstack_endpoint_in_flight_requests": ("gauge", "Prediction requests being answered."),
    "mlstack_endpoint_routing_revision": (
        "gauge",
        "The endpoint file revision in force: the lowest over the live workers.",
    ),
    "mlstack_endpoint_model_load_seconds": (
        "gauge",
        "How long the worker took to load the versions of the revision in force (the slowest "
        "live worker).",
    ),
    "mlstack_endpoint_prediction_log_lag_seconds": (
        "gauge",
        "How long the prediction log has refused a worker's rows (the longest over workers); "
        "0 while it takes them.",
    ),
    "mlstack_endpoint_prediction_log_dropped_rows_total": (
        "counter",
        "Prediction log rows lost: neither the log nor the spill folder took them.",
    ),
}


class MetricsUnavailable(Exception):
    """This worker cannot write its metric files; the message names the folder and why."""


def unavailable(directory: Path | str, exc: OSError) -> str:
    """The sentence for metrics a worker cannot write: the folder and the error."""
    return (
        f"metrics off in this worker: cannot write its metric files in {directory} "
        f"({type(exc).__name__}: {exc.strerror or exc})"
    )


class EndpointMetrics:
    """One worker's metrics. Built once per worker, after `directory` exists.

    Raises OSError when the folder cannot take this worker's files."""

    def __init__(self, directory: Path, endpoint: str) -> None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        from prometheus_client import Counter, Gauge, Histogram, values

        # prometheus_client picks its value class when first imported; BentoML sets the
        # variable for its workers, but a worker run by hand (or a bench) may not have it.
        if not getattr(values.ValueClass, "_multiprocess", False):
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.directory = directory
        self.endpoint = endpoint
        help_ = {name: text for name, (_, text) in ENDPOINT_METRICS.items()}
        labels = ("endpoint", "version", "role")
        self._requests = Counter(
            "mlstack_endpoint_requests",
            help_["mlstack_endpoint_requests_total"],
            (*labels, "code"),
            registry=None,
        )
        self._duration = Histogram(
            "mlstack_endpoint_request_duration_seconds",
            help_["mlstack_endpoint_request_duration_seconds"],
            labels,
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self._rejected = Counter(
            "mlstack_endpoint_rejected_requests",
            help_["mlstack_endpoint_rejected_requests_total"],
            ("endpoint", "code", "reason"),
            registry=None,
        )
        self._errors = Counter(
            "mlstack_endpoint_version_errors",
            help_["mlstack_endpoint_version_errors_total"],
            labels,
            registry=None,
        )

        def gauge(name: str, mode: Any) -> Any:  # one per endpoint, combined over workers
            return Gauge(
                name, help_[name], ("endpoint",), multiprocess_mode=mode, registry=None
            ).labels(endpoint)

        self._in_flight = gauge("mlstack_endpoint_in_flight_requests", "livesum")
        self._revision = gauge("mlstack_endpoint_routing_revision", "livemin")
        self._load = gauge("mlstack_endpoint_model_load_seconds", "livemax")
        self._lag = gauge("mlstack_endpoint_prediction_log_lag_seconds", "livemax")
        self._dropped = Counter(
            "mlstack_endpoint_prediction_log_dropped_rows",
            help_["mlstack_endpoint_prediction_log_dropped_rows_total"],
            ("endpoint",),
            registry=None,
        ).labels(endpoint)
        self._dropped.inc(0)  # exported from the start: a rule can compare it to 0
        self.in_flight = 0  # prediction requests being answered (moved by app.py)
        # per (version, role): [answers, seconds, one count per bucket, +Inf last], since the
        # worker started; what the files hold already is in _pushed
        self._tallies: dict[tuple[str, str], list[float]] = {}
        self._pushed: dict[tuple[str, str], list[float]] = {}
        self._failed: dict[tuple[str, str], Any] = {}
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._outage_seen: tuple[float, int] = (0.0, 0)
        #: why this worker's metrics went off (a write failed), or None while they work
        self.fault: str | None = None

    def _failed_write(self, exc: OSError) -> None:
        """A write failed: metrics off in this worker, said once in the server log."""
        if self.fault is None:
            self.fault = unavailable(self.directory, exc)
            self._stop.set()
            print(f"mlstack endpoint: {self.fault}", flush=True)

    @classmethod
    def from_environment(cls, endpoint: str) -> EndpointMetrics | None:
        """The worker's metrics in `$MLSTACK_METRICS_DIR` (set by the supervisor; empty: off).
        Unset (a pod running `bentoml serve` itself), a folder of this server's own under
        the temporary folder: its workers share their parent, the server, which no earlier
        run had (a restarted container starts with a fresh file system).

        Raises MetricsUnavailable (naming the folder) when the worker cannot write there."""
        directory = os.environ.get(METRICS_ENV)
        if directory == "":
            return None
        if directory is None:
            directory = os.path.join(tempfile.gettempdir(), f"mlstack-metrics-{os.getppid()}")
        try:
            os.makedirs(directory, exist_ok=True)
            return cls(Path(directory), endpoint)
        except OSError as exc:
            raise MetricsUnavailable(unavailable(directory, exc)) from exc

    # -- the request path -----------------------------------------------------------------

    def answered(self, version: str, role: str, started: float) -> None:
        """A request answered 200 by `version` (`role`: champion, canary, fallback, shadow);
        `started` is its `time.perf_counter()` on arrival."""
        elapsed = time.perf_counter() - started
        tally = self._tallies.get((version, role))
        if tally is None:
            tally = self._tallies[version, role] = [0.0] * (len(LATENCY_BUCKETS) + 3)
        tally[0] += 1
        tally[1] += elapsed
        tally[2 + bisect_left(LATENCY_BUCKETS, elapsed)] += 1  # le: the first bound >= it

    def failed(self, version: str, role: str) -> None:
        """`version` failed a prediction (its request may still be answered by another)."""
        if self.fault is not None:
            return
        try:
            child = self._failed.get((version, role))
            if child is None:
                child = self._failed[version, role] = self._errors.labels(
                    self.endpoint, version, role
                )
            child.inc()
        except OSError as exc:
            self._failed_write(exc)

    def unanswered(self, code: int) -> None:
        """A request no version answered (every one failed it): counted under its status."""
        if self.fault is not None:
            return
        try:
            self._requests.labels(self.endpoint, "", "", str(code)).inc()
        except OSError as exc:
            self._failed_write(exc)

    def rejected(self, code: int, reason: str, version: str = "", role: str = "") -> None:
        """A prediction request refused with `code` (4xx) for `reason` (see
        ENDPOINT_METRICS) before a version saw it; `version` and `role` when it pinned one.
        Written to the files at once: a refusal is rare, and not the hot path."""
        if self.fault is not None:
            return
        try:
            self._requests.labels(self.endpoint, version, role, str(code)).inc()
            self._rejected.labels(self.endpoint, str(code), reason).inc()
        except OSError as exc:
            self._failed_write(exc)

    # -- off the request path ---------------------------------------------------------------

    def revision(self, revision: int, load_seconds: float) -> None:
        """A revision is in force in this worker, its versions loaded in `load_seconds`."""
        if self.fault is not None:
            return
        try:
            self._revision.set(revision)
            self._load.set(load_seconds)
        except OSError as exc:
            self._failed_write(exc)

    def watch_log(self, outage: Callable[[], LogOutage | None]) -> None:
        """Once a second, in a thread: the tallies into the files, and the prediction log's
        gauges from `outage`."""

        def update() -> None:
            while not self._stop.wait(UPDATE_SECONDS):
                self.flush()
                if self.fault is None:
                    try:
                        self.log_state(outage(), time.time())
                    except OSError as exc:
                        self._failed_write(exc)

        threading.Thread(target=update, name="endpoint-metrics", daemon=True).start()

    def flush(self) -> None:
        """What requests added to the tallies since the last flush, into the files; a write
        that fails turns this worker's metrics off (`fault`), never raises."""
        if self.fault is not None:
            return
        try:
            self._flush()
        except OSError as exc:
            self._failed_write(exc)

    def _flush(self) -> None:
        with self._flushing:
            self._in_flight.set(self.in_flight)
            for key, tally in list(self._tallies.items()):
                now = list(tally)  # one copy: the request path may add on meanwhile
                before = self._pushed.get(key) or [0.0] * len(now)
                if now[0] == before[0]:
                    continue
                version, role = key
                self._requests.labels(self.endpoint, version, role, "200").inc(now[0] - before[0])
                # prometheus_client's histogram has no public call to add counts in bulk: its
                # children hold one value per bucket (not cumulative) and the sum
                child = self._duration.labels(self.endpoint, version, role)
                child._sum.inc(now[1] - before[1])
                for i, bucket in enumerate(child._buckets, start=2):
                    if now[i] != before[i]:
                        bucket.inc(now[i] - before[i])
                self._pushed[key] = now

    def log_state(self, outage: LogOutage | None, now: float) -> None:
        """The log's lag and the rows it lost since the last call (`now`: unix seconds)."""
        if outage is None:
            self._lag.set(0)
            return
        self._lag.set(max(0.0, now - outage.since))
        since, lost = self._outage_seen
        new = outage.lost - lost if since == outage.since else outage.lost
        if new > 0:
            self._dropped.inc(new)
        self._outage_seen = (outage.since, outage.lost)

    def close(self) -> None:
        """The worker exits: its live gauges go (prometheus_client's `mark_process_dead`),
        its counters stay in the sums."""
        from prometheus_client import multiprocess

        self.flush()
        self._stop.set()
        try:
            multiprocess.mark_process_dead(os.getpid(), str(self.directory))  # type: ignore[no-untyped-call]
        except OSError as exc:
            self._failed_write(exc)

    def exposition(self) -> bytes:
        """Every worker's metrics, summed, in Prometheus' text format (this worker's as of
        now, the others' as of their last flush, within a second). Raises MetricsUnavailable
        once this worker's metrics are off (`fault`)."""
        self.flush()
        if self.fault is not None:
            raise MetricsUnavailable(self.fault)
        try:
            return exposition(self.directory)
        except OSError as exc:
            raise MetricsUnavailable(unavailable(self.directory, exc)) from exc


def exposition(directory: Path) -> bytes:
    """The metrics in `directory` (prometheus_client multiprocess files), as text."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def role_of(version: str, champion: str) -> str:
    """A live version's role: the champion, or the canary (any other routed version)."""
    return "champion" if version == champion else "canary"
