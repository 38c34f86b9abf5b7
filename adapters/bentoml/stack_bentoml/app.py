"""The hot path: a raw ASGI app that validates, routes, predicts and logs.

It is mounted on the BentoML service (which owns the process, workers, health probes and
graceful shutdown); the request itself skips BentoML's per-request machinery, which costs
several times sklearn's predict. Routing state lives in an immutable `Routing` object that
a background thread rebuilds when the endpoint file changes, so a request reads one
attribute and never waits for a model to load.

A revision a worker cannot load (a model that fails to load, code it cannot import) is
refused: the worker keeps its last good routing (or, at start, exits as BentoML makes it) and
writes `refused-r<revision>.txt` beside the endpoint file with the exception and its
traceback. The adapter waits on that file, so a deploy or a route fails at once saying why
instead of waiting out its timeout (BentoML's arbiter restarts a failed worker forever)."""

from __future__ import annotations

import gc
import json
import math
import os
import random
import tempfile
import threading
import time
import traceback
import uuid
import zlib
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stack_bentoml.batching import MicroBatcher
from stack_bentoml.feedback import FEEDBACK_SCHEMA, feedback_entries, parse_feedback
from stack_bentoml.isolation import load_isolated
from stack_bentoml.predictlog import (
    ParquetSink,
    Prediction,
    PredictionLogWriter,
    ShadowJob,
    Sink,
)
from stack_bentoml.runtime import LoadedVersion, load_version
from stack_bentoml.schema import RequestSchema, problems
from stack_bentoml.spec import EndpointSpec, read_spec

Scope = dict[str, Any]
LOG_URL_ENV = "MLSTACK_PREDICTION_LOG_URL"
JSON_HEADERS = [(b"content-type", b"application/json")]
REFUSAL_PREFIX = "refused-r"


class VersionLoadFailed(RuntimeError):
    """A version named in the endpoint file could not be loaded in this worker."""


def refusal_path(folder: Path, revision: int) -> Path:
    """The file in which a worker says it refused `revision` of the endpoint in `folder`:
    its first line is the exception (`VersionLoadFailed: churn@3 could not be loaded: …`),
    then the traceback. Revisions are never reused, so the file is never stale."""
    return folder / f"{REFUSAL_PREFIX}{revision}.txt"


def write_refusal(folder: Path, revision: int, exc: BaseException) -> None:
    """Written atomically (several workers may refuse the same revision); never raises, so
    that the refusal itself is what the worker reports."""
    text = f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{REFUSAL_PREFIX}")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, refusal_path(folder, revision))
    except OSError as error:  # a read-only folder (a container): the log still says why
        print(f"mlstack endpoint: cannot record the refusal ({error})", flush=True)


@dataclass(frozen=True, slots=True)
class Routing:
    spec: EndpointSpec
    schema: RequestSchema
    versions: dict[str, LoadedVersion]
    refs: tuple[str, ...]
    cumulative: tuple[float, ...]
    by_weight: tuple[str, ...]  # every routed version, heaviest first (weight 0 included)

    def fallback(self, failed: str) -> str | None:
        """Who answers when `failed` cannot: the heaviest other version (the champion
        during a canary; the previous version, kept at weight 0, after a promotion)."""
        return next((ref for ref in self.by_weight if ref != failed), None)

    def choose(self, subject: bytes | None) -> str:
        if len(self.refs) == 1:
            return self.refs[0]
        point = (zlib.crc32(subject) % 10_000) / 10_000 if subject else random.random()
        return self.refs[min(bisect_right(self.cumulative, point), len(self.refs) - 1)]


def build_routing(
    spec: EndpointSpec, loaded: dict[tuple[str, bool], LoadedVersion], pid_dir: Path
) -> Routing:
    """The champion (heaviest) in this process, every other version in its own (loaded once
    and kept: a promoted challenger is loaded in-process when it becomes the champion)."""
    champion = max(spec.weights, key=lambda ref: spec.weights[ref])
    versions: dict[str, LoadedVersion] = {}
    for ref in [*spec.weights, *spec.shadows]:
        key = (ref, ref != champion)
        if key not in loaded:
            version_spec = spec.versions[ref]
            try:
                loaded[key] = (
                    load_isolated(version_spec, pid_dir) if key[1] else load_version(version_spec)
                )
            except Exception as exc:
                raise VersionLoadFailed(
                    f"{ref} could not be loaded: {type(exc).__name__}: {exc}"
                ) from exc
        versions[ref] = loaded[key]
    refs = tuple(ref for ref, weight in spec.weights.items() if weight > 0)
    total = sum(spec.weights[r] for r in refs)
    cumulative = tuple(c / total for c in accumulate(spec.weights[r] for r in refs))
    by_weight = tuple(sorted(spec.weights, key=lambda r: -spec.weights[r]))
    schema = RequestSchema(spec.live_inputs(), spec.max_rows)
    return Routing(spec, schema, versions, refs, cumulative, by_weight)


class PredictionApp:
    def __init__(self, spec_path: Path) -> None:
        self.spec_path = spec_path
        self.routing: Routing | None = None
        self.log: PredictionLogWriter | None = None
        self._loaded: dict[tuple[str, bool], LoadedVersion] = {}
        self._seen: tuple[int, int] = (0, 0)  # the endpoint file's inode and mtime
        self._stop = threading.Event()
        self.batcher = MicroBatcher()

    # -- lifecycle (called by the BentoML service in each worker) ------------------------

    def start(self) -> None:
        self._refresh()
        spec = self._routing().spec
        files = ParquetSink(Path(spec.log_dir))
        url = os.environ.get(LOG_URL_ENV)
        if spec.log_table and url:
            from stack_bentoml.postgres_log import PostgresSink

            sink: Sink = PostgresSink(url, spec.log_table)
        else:
            sink = files
        self.log = PredictionLogWriter(
            sink,
            flush_seconds=spec.log_flush_seconds,
            shadow_predict=self._shadow_predict,
            fallback=files if sink is not files else None,
        )
        threading.Thread(target=self._watch, name="endpoint-watch", daemon=True).start()
        # The loaded models and libraries live as long as the worker: move them out of the
        # collector's sight, so that collections (pauses in the tail latency) stay short.
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        self._stop.set()
        if self.log is not None:
            self.log.close()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
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
        try:
            self.routing = build_routing(spec, self._loaded, folder / "isolated")
        except Exception as exc:
            write_refusal(folder, spec.revision, exc)
            raise

    def _routing(self) -> Routing:
        assert self.routing is not None, "the endpoint has not started"
        return self.routing

    def _shadow_predict(self, ref: str, rows: list[list[Any]]) -> Any:
        return self._routing().versions[ref].predict(rows)

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/predict":
            if method != "POST":
                await _answer(send, 405, {"error": "use POST"}, [(b"allow", b"POST")])
                return
            await self._predict(scope, receive, send)
        elif path == "/feedback":
            if method != "POST":
                await _answer(send, 405, {"error": "use POST"}, [(b"allow", b"POST")])
                return
            await self._feedback(receive, send)
        elif path == "/openapi.json" and method == "GET":
            await _answer(send, 200, self.openapi())
        elif path == "/endpoint" and method == "GET":
            spec = self._routing().spec
            await _answer(
                send,
                200,
                {
                    "name": spec.name,
                    "revision": spec.revision,
                    "weights": spec.weights,
                    "shadows": list(spec.shadows),
                },
            )
        else:
            await _answer(send, 404, {"error": f"no route {method} {path}"})

    async def _predict(self, scope: Scope, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        routing = self._routing()
        spec = routing.spec
        headers = dict(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id"))
        extra = [(b"x-request-id", request_id.encode())]
        body = await _body(receive, spec.max_body_bytes)
        if body is None:
            await _answer(send, 413, {"error": f"body over {spec.max_body_bytes} bytes"}, extra)
            return
        if not body.strip():
            await _answer(send, 400, {"error": "empty body; send a JSON record"}, extra)
            return
        try:
            rows = routing.schema.parse(body)
        except ValidationError as exc:
            await _answer(send, 422, {"error": "invalid request", "fields": problems(exc)}, extra)
            return
        except ValueError as exc:
            await _answer(send, 422, {"error": str(exc)}, extra)
            return
        subject = headers.get(spec.ab_header.encode()) if spec.sticky else None
        chosen = routing.choose(subject)
        now = time.time()
        # The body is the inputs, validated, already as JSON: logged as sent (as a list).
        records = body.decode() if body.lstrip()[:1] == b"[" else f"[{body.decode()}]"
        try:
            output = await self.batcher.predict(routing.versions[chosen], rows)
            role, status, answered = "live", 200, chosen
        except Exception as exc:
            self._log_failure(spec, request_id, now, chosen, records, exc, started)
            fallback = routing.fallback(chosen)
            if fallback is None:
                await _answer(send, 500, {"error": f"prediction failed: {exc}"}, extra)
                return
            try:
                output = await self.batcher.predict(routing.versions[fallback], rows)
            except Exception as again:
                self._log_failure(spec, request_id, now, fallback, records, again, started)
                await _answer(send, 500, {"error": f"prediction failed: {again}"}, extra)
                return
            role, status, answered = "fallback", 200, fallback
        extra.append((b"x-model-version", answered.encode()))
        await _answer(send, status, {"predictions": output, "model_version": answered}, extra)
        entry = Prediction(
            request_id=request_id,
            ts=now,
            endpoint=spec.name,
            model_version=answered,
            role=role,
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            inputs=records,
            output=output,
        )
        assert self.log is not None
        if spec.shadows:
            self.log.log(ShadowJob(entry, rows, spec.shadows))
        else:
            self.log.log(entry)

    async def _feedback(self, receive: Any, send: Any) -> None:
        spec = self._routing().spec
        body = await _body(receive, spec.max_body_bytes)
        if body is None:
            await _answer(send, 413, {"error": f"body over {spec.max_body_bytes} bytes"})
            return
        if not body.strip():
            await _answer(send, 400, {"error": 'empty body; send {"request_id": …, "label": …}'})
            return
        try:
            items = parse_feedback(body, spec.max_rows)
        except ValidationError as exc:
            await _answer(send, 422, {"error": "invalid feedback", "fields": problems(exc)})
            return
        except ValueError as exc:
            await _answer(send, 422, {"error": str(exc)})
            return
        assert self.log is not None
        for entry in feedback_entries(items, endpoint=spec.name, now=time.time()):
            self.log.log(entry)
        await _answer(send, 202, {"accepted": len(items)})

    def _log_failure(
        self,
        spec: EndpointSpec,
        request_id: str,
        now: float,
        ref: str,
        records: str,
        exc: Exception,
        started: float,
    ) -> None:
        assert self.log is not None
        self.log.log(
            Prediction(
                request_id=request_id,
                ts=now,
                endpoint=spec.name,
                model_version=ref,
                role="live",
                status=500,
                latency_ms=(time.perf_counter() - started) * 1000,
                inputs=records,
                output=None,
                error=f"{type(exc).__name__}: {exc}",
            )
        )

    def openapi(self) -> dict[str, Any]:
        spec, schema = self._routing().spec, self._routing().schema
        error = {"type": "object", "properties": {"error": {"type": "string"}}}
        as_json = {"application/json": {"schema": error}}
        return {
            "openapi": "3.0.3",
            "info": {"title": f"mlstack endpoint {spec.name}", "version": str(spec.revision)},
            "paths": {
                "/predict": {
                    "post": {
                        "operationId": "predict",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": schema.openapi_schema()}},
                        },
                        "responses": {
                            "200": {"description": "predictions"},
                            "400": {
                                "description": "empty body",
                                "content": as_json,
                            },
                            "413": {"description": "body too large"},
                            "422": {"description": "invalid request: the fields at fault"},
                        },
                    }
                },
                "/feedback": {
                    "post": {
                        "operationId": "feedback",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": FEEDBACK_SCHEMA}},
                        },
                        "responses": {
                            "202": {"description": "labels accepted"},
                            "400": {"description": "empty body", "content": as_json},
                            "413": {"description": "body too large"},
                            "422": {"description": "invalid feedback: the fields at fault"},
                        },
                    }
                },
            },
        }


def _request_id(given: bytes | None) -> str:
    if given and len(given) <= 128 and given.isascii() and given.decode().isprintable():
        return given.decode()
    return uuid.uuid4().hex


async def _body(receive: Any, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _finite(value: Any) -> Any:
    """`value` with every NaN and ±inf replaced by None (what strict JSON parsers accept)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def _answer(
    send: Any, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    try:
        body = json.dumps(payload, allow_nan=False).encode()
    except ValueError:  # a model answered NaN or ±inf: JSON has no such number, so null
        body = json.dumps(_finite(payload), allow_nan=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *JSON_HEADERS,
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
