"""Metric buffering: points are written with log_batch, retried with backoff, never dropped.

Writing metrics one call per point is what makes MLflow slow (~100 points/s on SQLite);
batches of 1,000 are ~70x faster. The buffer writes when a batch is full or the flush interval
has passed, and when a run finishes, the interpreter exits or SIGTERM arrives. A failed write
keeps the points; past `max_points`, or when a run finishes while the backend is still down,
they go to a spill file that `mlstack tracking replay FILE` uploads later.

A server that hangs (accepts, never answers) is bounded by `Deadline`: a write waits at
most its timeout, and while that write is still hanging no other is started, so a training
step is held up once per hang, for at most the timeout, never for as long as the server hangs.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

Writer = Callable[[str, list[Any]], object]
T = TypeVar("T")


class WriteTimedOut(TimeoutError):
    """A call got no answer within its deadline (the server hangs); it may still land."""


class Deadline:
    """Runs calls to the tracking server in a daemon thread, waiting at most `timeout` seconds.

    A call that times out keeps running in its thread (an HTTP call cannot be cancelled);
    until it returns, later calls fail at once with WriteTimedOut instead of queueing behind
    it. The buffer keeps a timed-out batch pending, so it is written again or spilled: MLflow
    ignores a point it already has, so a late landing is not duplicated. The thread is a
    daemon: a hung call never keeps the interpreter from exiting.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._hanging: threading.Thread | None = None

    def run(self, call: Callable[[], T]) -> T:
        """`call()`'s result; raises what it raised, or WriteTimedOut."""
        if self._hanging is not None and self._hanging.is_alive():
            raise WriteTimedOut(
                f"an earlier call has had no answer for over {self.timeout:g} s (server hangs)"
            )
        self._hanging = None
        outcome: list[tuple[T | None, BaseException | None]] = []

        def attempt() -> None:
            try:
                outcome.append((call(), None))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append((None, exc))

        thread = threading.Thread(target=attempt, name="mlstack-tracking-call", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            self._hanging = thread
            raise WriteTimedOut(f"no answer from the server within {self.timeout:g} s")
        result, error = outcome[0]
        if error is not None:
            raise error
        return result  # type: ignore[return-value]


@dataclass
class RetryPolicy:
    attempts: int
    backoff: float
    backoff_max: float


@dataclass
class MetricBuffer:
    """Pending metric points per run; thread-safe."""

    write: Writer
    batch_size: int
    flush_interval: float
    retry: RetryPolicy
    max_points: int
    on_overflow: Callable[[str, list[Any]], object]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _pending: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _last_write: float = field(default=0.0)
    _not_before: float = field(default=0.0)
    _backoff: float = field(default=0.0)
    last_error: BaseException | None = None

    def __post_init__(self) -> None:
        self._last_write = self.clock()
        self._backoff = self.retry.backoff

    def add(self, run_id: str, points: list[Any]) -> None:
        with self._lock:
            self._pending[run_id].extend(points)
            due = (
                self.pending() >= self.batch_size
                or self.clock() - self._last_write >= self.flush_interval
            )
            if due:
                self.try_flush()
            if self.pending() > self.max_points:
                for overflowing in list(self._pending):
                    self.on_overflow(overflowing, self.take(overflowing))

    def pending(self, run_id: str | None = None) -> int:
        with self._lock:
            if run_id is not None:
                return len(self._pending.get(run_id, ()))
            return sum(len(points) for points in self._pending.values())

    def runs(self) -> list[str]:
        """Runs with unwritten points."""
        with self._lock:
            return [run_id for run_id, points in self._pending.items() if points]

    def take(self, run_id: str) -> list[Any]:
        """Remove and return a run's unwritten points (to save them elsewhere)."""
        with self._lock:
            return self._pending.pop(run_id, [])

    def try_flush(self, run_id: str | None = None) -> bool:
        """One attempt, unless a recent failure asks to wait; True when nothing is pending."""
        with self._lock:
            if self.clock() < self._not_before:
                return False
            return self._attempt(run_id)

    def flush(self, run_id: str | None = None) -> bool:
        """Up to `retry.attempts` tries with exponential backoff; True when all is written."""
        with self._lock:
            for attempt in range(self.retry.attempts):
                if self._attempt(run_id):
                    return True
                if attempt + 1 < self.retry.attempts:
                    self.sleep(self._backoff)
                    self._backoff = min(self._backoff * 2, self.retry.backoff_max)
            return False

    def _attempt(self, run_id: str | None) -> bool:
        runs = [run_id] if run_id is not None else list(self._pending)
        try:
            for run in runs:
                points = self._pending.get(run, [])
                while points:
                    self.write(run, points[: self.batch_size])
                    del points[: self.batch_size]
                self._pending.pop(run, None)
        except Exception as exc:  # the backend is down: keep the points (the writer itself
            # deals with points the store refuses on their merits, see stack_mlflow.refusals)
            self.last_error = exc
            self._not_before = self.clock() + self._backoff
            return False
        self._last_write = self.clock()
        self._backoff = self.retry.backoff
        self._not_before = 0.0
        self.last_error = None
        return True
