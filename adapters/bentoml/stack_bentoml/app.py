"""The hot path: a raw ASGI app that validates, routes, predicts and logs.

It is mounted on the BentoML service (which owns the process, workers, health probes and
graceful shutdown); the request itself skips BentoML's per-request machinery, which costs
several times sklearn's predict. Routing state lives in an immutable `Routing` object
(routing.py) that a background thread rebuilds when the endpoint file changes (it looks
every 0.1 s), so a request reads one attribute and never waits for a model to load; once it
is in force, the worker acknowledges the revision (acks.py).

A revision a worker cannot load (a model that fails to load, code it cannot import) is
refused: the worker keeps its last good routing (or, at start, exits as BentoML makes it) and
writes `refused-r<revision>.txt` beside the endpoint file with the exception and its
traceback (refusals.py). The adapter waits on that file, so a deploy or a route fails at once
saying why instead of waiting out its timeout (BentoML's arbiter restarts a failed worker
forever)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stack_bentoml.acks import write_ack
from stack_bentoml.answers import answer, encode, send_body
from stack_bentoml.batching import MicroBatcher
from stack_bentoml.config import LOG_URL_ENV
from stack_bentoml.feedback import feedback_entries, parse_feedback
from stack_bentoml.guards import nests_deeper_than, read_body, unsupported_media
from stack_bentoml.isolation import ChallengerBusy, DeadlineMissed, IsolatedVersion
from stack_bentoml.metrics import CONTENT_TYPE, EndpointMetrics, MetricsUnavailable, role_of
from stack_bentoml.openapi import openapi
from stack_bentoml.predictlog import (
    ParquetSink,
    Prediction,
    PredictionLogWriter,
    ShadowJob,
    Sink,
)
from stack_bentoml.refusals import write_refusal
from stack_bentoml.routing import Routing, build_routing
from stack_bentoml.runtime import LoadedVersion
from stack_bentoml.schema import problems
from stack_bentoml.spec import EndpointSpec, read_spec
from stack_bentoml.spill import SpillFolder, default_spill_dir
from stack_bentoml.traffic import TRAFFIC_HEADER, VERSION_HEADER, pinned, traffic_of

Scope = dict[str, Any]
Headers = dict[bytes, bytes]
Extra = list[tuple[bytes, bytes]]
Refused = Callable[[int, str], None]  # a 4xx answered: (status, reason)
WATCH_SECONDS = 0.1  # how often a worker looks at the endpoint file


class PredictionApp:
    def __init__(self, spec_path: Path) -> None:
        self.spec_path = spec_path
        self.routing: Routing | None = None
        self.log: PredictionLogWriter | None = None
        self._loaded: dict[tuple[str, bool], LoadedVersion] = {}
        self._seen: tuple[int, int] = (0, 0)  # the endpoint file's inode and mtime
        self._stop = threading.Event()
        self.batcher = MicroBatcher()
        self._reported: set[tuple[str, str]] = set()  # (version, exception type) in full
        self.metrics: EndpointMetrics | None = None  # /metrics, unless turned off (metrics.py)
        self.metrics_fault: str | None = None  # why this worker could not start its metrics
        self._load_seconds = 0.0  # how long the revision in force took to load

    # -- lifecycle (called by the BentoML service in each worker) ------------------------

    def start(self) -> None:
        self._refresh()
        spec = self._routing().spec
        try:
            self.metrics = EndpointMetrics.from_environment(spec.name)
        except MetricsUnavailable as exc:  # optional: the worker serves without them
            self.metrics_fault = str(exc)
            print(f"mlstack endpoint: {exc}", flush=True)
        if self.metrics is not None:
            self.metrics.revision(spec.revision, self._load_seconds)
        url = os.environ.get(LOG_URL_ENV)
        if spec.log_table and url:
            from stack_bentoml.postgres_log import PostgresSink

            sink: Sink = PostgresSink(url, spec.log_table)
        else:
            sink = ParquetSink(Path(spec.log_dir))
        spill = Path(spec.spill_dir) if spec.spill_dir else default_spill_dir(spec.name)
        self.log = PredictionLogWriter(
            sink,
            flush_seconds=spec.log_flush_seconds,
            shadow_predict=self._shadow_predict,
            spill=SpillFolder(spill),
        )
        if self.metrics is not None:
            self.metrics.watch_log(self.log.outage)
        threading.Thread(target=self._watch, name="endpoint-watch", daemon=True).start()
        # The loaded models and libraries live as long as the worker: move them out of the
        # collector's sight, so that collections (pauses in the tail latency) stay short.
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        self._stop.set()
        if self.log is not None:
            self.log.close()
        if self.metrics is not None:
            self.metrics.close()

    def degraded(self) -> list[str]:
        """Why this worker answers but is not whole (`/readyz`); empty when it is."""
        outage = self.log.outage() if self.log is not None else None
        return [outage.sentence()] if outage is not None else []

    def _watch(self) -> None:
        # A stat every tenth of a second: a new split is in force well within a second,
        # and the request path never looks at the file.
        while not self._stop.wait(WATCH_SECONDS):
            try:
                self._refresh()
            except Exception as exc:  # a bad file keeps the last good routing
                print(f"mlstack endpoint: keeping revision; {exc}", flush=True)

    def _refresh(self) -> None:
        # Each write is a new file (renamed over the old): its inode tells two writes apart
        # even within the file system's timestamp granularity.
        stat = os.stat(self.spec_path)
        seen = (stat.st_ino, stat.st_mtime_ns)
        if seen == self._seen:
            return
        # A file that fails is tried once, not every 0.25 s: the adapter writes a new one.
        self._seen = seen
        spec = read_spec(self.spec_path)
        folder = self.spec_path.parent
        loading = time.perf_counter()
        try:
            self.routing = build_routing(spec, self._loaded, folder / "isolated")
        except Exception as exc:
            write_refusal(folder, spec.revision, exc)
            raise
        self._load_seconds = time.perf_counter() - loading
        if self.metrics is not None:
            self.metrics.revision(spec.revision, self._load_seconds)
        write_ack(folder, spec.revision)  # in force here: the adapter waits for every worker

    def _routed(self) -> Collection[str]:
        """The versions a probe may name: those the split routes (weight 0 included)."""
        return self._routing().spec.weights.keys()

    def _routing(self) -> Routing:
        assert self.routing is not None, "the endpoint has not started"
        return self.routing

    def _shadow_predict(self, ref: str, rows: list[list[Any]]) -> Any:
        started = time.perf_counter()
        try:
            output = self._routing().versions[ref].predict(rows)
        except Exception:
            if self.metrics is not None:
                self.metrics.failed(ref, "shadow")
            raise
        if self.metrics is not None:
            self.metrics.answered(ref, "shadow", started)
        return output

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id"))
        extra = [(b"x-request-id", request_id.encode())]
        try:
            await self._route(scope, receive, send, headers, request_id)
        except Exception as exc:  # a fault of ours: the client gets its id, not our insides
            route = f"{scope.get('method')} {scope.get('path')}"
            _report(f"request {request_id}: {route} failed", failure_text(exc))
            with contextlib.suppress(Exception):  # unless the answer had already begun
                await answer(send, 500, _failed(request_id, "the endpoint"), extra)

    async def _route(
        self, scope: Scope, receive: Any, send: Any, headers: Headers, request_id: str
    ) -> None:
        path, method = scope["path"], scope["method"]
        extra = [(b"x-request-id", request_id.encode())]
        if path in ("/predict", "/feedback"):
            if method != "POST":
                await answer(send, 405, {"error": "use POST"}, [*extra, (b"allow", b"POST")])
            elif path == "/predict":
                try:
                    traffic = traffic_of(headers.get(TRAFFIC_HEADER.encode()))
                    pin = pinned(headers.get(VERSION_HEADER.encode()), traffic, self._routed())
                except ValueError as exc:
                    await answer(send, 400, {"error": str(exc)}, extra)
                    if self.metrics is not None:
                        self.metrics.rejected(400, "bad_header")
                    return
                metrics = self.metrics
                if metrics is None:
                    await self._predict(receive, send, headers, request_id, extra, traffic, pin)
                    return
                metrics.in_flight += 1
                try:
                    await self._predict(receive, send, headers, request_id, extra, traffic, pin)
                finally:
                    metrics.in_flight -= 1
            else:
                await self._feedback(receive, send, headers, extra)
        elif path == "/metrics" and method == "GET" and self.metrics_fault is not None:
            await answer(send, 503, {"error": self.metrics_fault}, extra)
        elif path == "/metrics" and method == "GET" and self.metrics is not None:
            try:
                text = await asyncio.to_thread(self.metrics.exposition)  # every worker's file
            except MetricsUnavailable as exc:
                await answer(send, 503, {"error": str(exc)}, extra)
                return
            length = (b"content-length", str(len(text)).encode())
            sent = [(b"content-type", CONTENT_TYPE), length, *extra]
            await send({"type": "http.response.start", "status": 200, "headers": sent})
            await send({"type": "http.response.body", "body": text})
        elif path == "/openapi.json" and method == "GET":
            await answer(send, 200, openapi(self._routing().spec, self._routing().schema), extra)
        elif path == "/endpoint" and method == "GET":
            spec = self._routing().spec
            await answer(
                send,
                200,
                {
                    "name": spec.name,
                    "revision": spec.revision,
                    "weights": spec.weights,
                    "shadows": list(spec.shadows),
                    "degraded": self.degraded(),
                    "pid": os.getpid(),  # the worker that answered
                },
                extra,
            )
        else:
            await answer(send, 404, {"error": f"no route {method} {path}"}, extra)

    async def _json_body(
        self,
        receive: Any,
        send: Any,
        headers: Headers,
        extra: Extra,
        empty: str,
        deep: bool,
        refused: Refused | None = None,
    ) -> bytes | None:
        """The body, checked as every route checks it (guards.py); None once answered (and
        told to `refused` with the status and reason). With `deep` (a schema that takes any
        JSON somewhere), its nesting is counted too: elsewhere the signature's own shape
        bounds it, and the parser refuses past 200."""
        spec = self._routing().spec
        problem: tuple[int, str, str] | None = None
        media = unsupported_media(headers)
        body = None if media is not None else await read_body(receive, spec.max_body_bytes)
        if media is not None:
            problem = (415, "unsupported_media_type", media)
        elif body is None:
            problem = (413, "body_too_large", f"body over {spec.max_body_bytes} bytes")
        elif not body.strip():
            problem = (400, "empty_body", f"empty body; send {empty}")
        elif deep and nests_deeper_than(body, spec.max_depth):
            error = f"the JSON nests deeper than {spec.max_depth} arrays or objects"
            problem = (422, "too_deep", error)
        if problem is None:
            return body
        code, reason, error = problem
        await answer(send, code, {"error": error}, extra)
        if refused is not None:
            refused(code, reason)
        return None

    def _refused(self, routing: Routing, pin: str | None) -> Refused:
        """What counts a prediction request refused (4xx) in the metrics: under the version
        it pinned, when it pinned one."""
        metrics = self.metrics
        if metrics is None:
            return lambda code, reason: None
        version = pin or ""
        role = role_of(pin, routing.champion) if pin else ""
        return lambda code, reason: metrics.rejected(code, reason, version, role)

    async def _predict(
        self,
        receive: Any,
        send: Any,
        headers: Headers,
        request_id: str,
        extra: Extra,
        traffic: str = "live",
        pin: str | None = None,
    ) -> None:
        started = time.perf_counter()
        routing = self._routing()
        spec = routing.spec
        deep = routing.schema.unbounded
        refused = self._refused(routing, pin)
        body = await self._json_body(receive, send, headers, extra, "a JSON record", deep, refused)
        if body is None:
            return
        try:
            rows = routing.schema.parse(body)
        except ValidationError as exc:
            await answer(send, 422, {"error": "invalid request", "fields": problems(exc)}, extra)
            refused(422, "invalid_payload")
            return
        except ValueError as exc:
            await answer(send, 422, {"error": str(exc)}, extra)
            refused(422, "invalid_payload")
            return
        subject = headers.get(spec.ab_header.encode()) if spec.sticky else None
        chosen = pin if pin in routing.spec.weights else routing.choose(subject)
        now = time.time()
        # The body is the inputs, validated, already as JSON: logged as sent (as a list).
        records = body.decode() if body.lstrip()[:1] == b"[" else f"[{body.decode()}]"
        failure = functools.partial(
            self._log_failure, spec, request_id, now, records, started, traffic
        )
        try:
            output, sent = await self._answer_of(routing, chosen, rows)
            role, answered = "live", chosen
        except Exception as exc:
            failure(chosen, exc)
            fallback = routing.fallback(chosen)
            if fallback is None:
                await answer(send, 500, _failed(request_id, "the model"), extra)
                if self.metrics is not None:
                    self.metrics.unanswered(500)
                return
            try:
                output, sent = await self._answer_of(routing, fallback, rows)
            except Exception as again:  # every version failed it: the input's fault
                failure(fallback, again, role="fallback")
                await answer(send, 500, _failed(request_id, "the model"), extra)
                if self.metrics is not None:
                    self.metrics.unanswered(500)
                return
            role, answered = "fallback", fallback
        await send_body(send, 200, sent, [*extra, (b"x-model-version", answered.encode())])
        if self.metrics is not None:
            kind = role_of(answered, routing.champion) if role == "live" else role
            self.metrics.answered(answered, kind, started)
        entry = Prediction(
            request_id=request_id,
            ts=now,
            endpoint=spec.name,
            model_version=answered,
            role=role,
            status=200,
            latency_ms=(time.perf_counter() - started) * 1000,
            inputs=records,
            output=output,
            traffic=traffic,
        )
        assert self.log is not None
        if spec.shadows:
            self.log.log(ShadowJob(entry, rows, spec.shadows))
        else:
            self.log.log(entry)

    async def _answer_of(self, routing: Routing, ref: str, rows: list[list[Any]]) -> Any:
        """`ref`'s output for `rows`, and the answer's bytes: an output JSON cannot hold
        fails here, as the version's fault, not after the answer has begun."""
        version = routing.versions[ref]
        if isinstance(version, IsolatedVersion):  # awaited: never blocks this loop
            output = await version.answer(rows, routing.deadline_s)
        else:
            output = await self.batcher.predict(version, rows)
        return output, encode({"predictions": output, "model_version": ref})

    async def _feedback(self, receive: Any, send: Any, headers: Headers, extra: Extra) -> None:
        spec = self._routing().spec
        empty = '{"request_id": …, "label": …}'
        body = await self._json_body(receive, send, headers, extra, empty, deep=False)
        if body is None:
            return
        try:
            items = parse_feedback(body, spec.max_rows)
        except ValidationError as exc:
            await answer(send, 422, {"error": "invalid feedback", "fields": problems(exc)}, extra)
            return
        except ValueError as exc:
            await answer(send, 422, {"error": str(exc)}, extra)
            return
        assert self.log is not None
        for entry in feedback_entries(items, endpoint=spec.name, now=time.time()):
            self.log.log(entry)
        await answer(send, 202, {"accepted": len(items)}, extra)

    def _log_failure(
        self,
        spec: EndpointSpec,
        request_id: str,
        now: float,
        records: str,
        started: float,
        traffic: str,
        ref: str,
        exc: Exception,
        role: str = "live",
    ) -> None:
        """A version failed on a request: its traceback to the prediction log, and to the
        server log (in full the first time this worker sees that version fail so, then a
        line per request: a crashing canary must not flood the log). `role` is `fallback`
        when the request was first routed to another version; a version in its own process
        that did not answer in time is logged with status 504."""
        detail = failure_text(exc)
        kind = (ref, type(exc).__name__)
        headline = f"request {request_id}: {ref} failed"
        if kind in self._reported:
            _report(f"{headline}: {type(exc).__name__} (traceback in the prediction log)")
        else:
            self._reported.add(kind)
            _report(headline, detail)
        if self.metrics is not None:
            self.metrics.failed(ref, role_of(ref, self._routing().champion))
        assert self.log is not None
        self.log.log(
            Prediction(
                request_id=request_id,
                ts=now,
                endpoint=spec.name,
                model_version=ref,
                role=role,
                status=504 if isinstance(exc, DeadlineMissed | ChallengerBusy) else 500,
                latency_ms=(time.perf_counter() - started) * 1000,
                inputs=records,
                output=None,
                error=detail,
                traffic=traffic,
            )
        )


#: Request ids drawn by a generator of this process, seeded by the OS: uuid4's own
#: os.urandom is a system call per request, in which the worker's other threads (the log
#: writer, a challenger's channel) take the GIL from the event loop.
_IDS = random.Random()


def _request_id(given: bytes | None) -> str:
    """The caller's `x-request-id` when printable ASCII of at most 128 bytes, else a new
    random UUID4 (122 random bits, as `uuid.uuid4`), as 32 hex digits."""
    if given and len(given) <= 128 and given.isascii() and given.decode().isprintable():
        return given.decode()
    return uuid.UUID(int=_IDS.getrandbits(128), version=4).hex


def _failed(request_id: str, who: str) -> dict[str, str]:
    return {
        "error": f"{who} failed on this request; its error is in the server log and the "
        "prediction log under the request id",
        "request_id": request_id,
    }


def failure_text(exc: BaseException) -> str:
    """As text any log can store: a model's message may echo a lone surrogate (parquet
    refuses it) or a NUL (PostgreSQL does) from the request, which would lose its batch."""
    text = "".join(traceback.format_exception(exc))
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _report(line: str, detail: str = "") -> None:
    """To the server log (the worker's output)."""
    print(f"mlstack endpoint: {line}" + (f"\n{detail}" if detail else ""), flush=True)
