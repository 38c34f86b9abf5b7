"""The controller's own requests during a bake: failures that never reach the endpoint's log.

A version is judged on what the endpoint logged (health), and a request that never reached
the app leaves no row: a connection reset by a worker that died mid-request, a refusal, an
answer that never came from a stuck process. So while a step bakes, the controller sends
each version it judges a request of its own every `plan.probe_seconds` (one thread per
version, so a stuck one delays no other), through the server's Prober capability: the
version's input example, pinned to it and tagged `probe` (neither health nor monitoring
counts it). Each probe that got no answer within `plan.probe_timeout_s()` is counted by
why; the judge (judge.py) charges the version only when the champion's probes did not fail
alike (then the endpoint failed, not the version, and the verdict holds)."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from stack.config.rollout import RolloutPlan
from stack.contract.capabilities import ServerCapability
from stack.contract.serving import Prober
from stack.plugins.capabilities import declares

if TYPE_CHECKING:
    from stack.session import StackSession


@dataclass(frozen=True, slots=True)
class ProbeTally:
    """A version's probes so far: `sent` (answered or not), `failures`: why no answer came
    (`connection reset`, `no answer within 15 s`, ...) and how often; `unprobed`: why the
    version could not be probed at all (no input example), else None."""

    sent: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)
    unprobed: str | None = None

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def rate(self) -> float:
        return self.failed / self.sent if self.sent else 0.0

    def why(self) -> str:
        """`connection reset: 3, connection refused: 1`, most frequent first."""
        ordered = sorted(self.failures.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{why}: {count}" for why, count in ordered)


class Probes:
    """Probes `refs` on `endpoint` from threads of their own until closed; `tally()` reads
    what they found so far. Closing does not wait for a probe in flight (its thread ends
    when it returns, at most `timeout_s` later, and records nothing more)."""

    def __init__(
        self,
        prober: Prober,
        endpoint: str,
        refs: Sequence[str],
        *,
        every_s: float,
        timeout_s: float,
    ) -> None:
        self.prober = prober
        self.endpoint = endpoint
        self.refs = tuple(dict.fromkeys(refs))
        self.every_s = every_s
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent: Counter[str] = Counter()
        self._failures: dict[str, Counter[str]] = {ref: Counter() for ref in self.refs}
        self._unprobed: dict[str, str] = {}

    def start(self) -> Probes:
        for ref in self.refs:
            name = f"probe-{self.endpoint}-{ref}"
            threading.Thread(target=self._loop, args=(ref,), name=name, daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()

    def tally(self) -> dict[str, ProbeTally]:
        with self._lock:
            return {
                ref: ProbeTally(self._sent[ref], dict(self._failures[ref]), self._unprobed.get(ref))
                for ref in self.refs
            }

    def _loop(self, ref: str) -> None:
        while not self._stop.is_set():
            try:
                failure = self.prober.probe(self.endpoint, ref, timeout_s=self.timeout_s)
            except Exception as exc:  # cannot be probed (no example): said, not a failure
                with self._lock:
                    self._unprobed[ref] = f"{type(exc).__name__}: {exc}"
                return
            with self._lock:
                if self._stop.is_set():
                    return  # the bake is over: a late answer is no part of it
                self._sent[ref] += 1
                if failure is not None:
                    self._failures[ref][failure] += 1
            self._stop.wait(self.every_s)


@contextlib.contextmanager
def probing(
    session: StackSession, endpoint: str, refs: Sequence[str], plan: RolloutPlan
) -> Iterator[Probes | None]:
    """Probes of `refs` for the duration of the block; None when the stack's server does not
    declare the `probe` capability or the plan asks for none (`probe_seconds: null`)."""
    if not declares(session, ServerCapability.PROBE) or plan.probe_seconds is None or not refs:
        yield None
        return
    server = cast(Prober, session.server)
    probes = Probes(
        server, endpoint, refs, every_s=plan.probe_seconds, timeout_s=plan.probe_timeout_s()
    ).start()
    try:
        yield probes
    finally:
        probes.close()
