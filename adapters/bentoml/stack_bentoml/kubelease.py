"""One rollout at a time on a cluster endpoint, from any machine: a Kubernetes Lease
(coordination.k8s.io/v1) named `mlstack-rollout-<endpoint>` in the endpoint's namespace.

The rollout's process takes the Lease before it changes anything (holderIdentity: its host,
pid and a token of this hold), renews it every third of `leaseDurationSeconds` while the
rollout runs, and releases it (clears the holder) when the rollout ends. A process that dies
holding it stops renewing: once `renewTime + leaseDurationSeconds` has passed, another
machine takes it over (the cluster and the spine are the state, not the laptop).

Taking it is optimistic, as the API server arbitrates it: read the Lease, then create it or
replace it carrying the resourceVersion read; when two processes race, the API accepts one
write and answers the other 409, which reads the Lease again and finds the winner holding
it. Expiry is judged by this machine's clock against the holder's renewTime, as Kubernetes'
own leader election does: clocks more than a few seconds apart shorten or lengthen the wait
for a dead holder by as much."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from stack.errors import StackError
from stack_bentoml.kubeapi import Conflict, KubeApi
from stack_bentoml.kubernetes import MANAGED, dns_name

LEASE = ("coordination.k8s.io/v1", "Lease")
#: Reads and writes tried before a Lease that keeps changing under us is left to its holder.
ATTEMPTS = 3


class EndpointLeased(StackError):
    """Another process holds the endpoint's Lease: a rollout runs there."""


def lease_name(endpoint: str) -> str:
    return dns_name(f"mlstack-rollout-{endpoint}")


def holder_identity() -> str:
    """`host/pid-1234/0f3a9c1e`: this process, and a token telling its holds apart."""
    return f"{socket.gethostname()}/pid-{os.getpid()}/{uuid.uuid4().hex[:8]}"


def micro_time(moment: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class RolloutLease:
    """The Lease of `endpoint` in `namespace`, as held by this process (`identity`)."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        endpoint: str,
        *,
        seconds: int,
        identity: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.endpoint = endpoint
        self.name = lease_name(endpoint)
        self.seconds = seconds
        self.identity = identity or holder_identity()
        self.clock = clock
        self.lost: str | None = None  # why this process no longer holds it
        self._renewed: datetime | None = None  # when it last wrote its renewTime

    def acquire(self) -> None:
        """Hold the Lease; EndpointLeased naming its holder while another process holds
        it (renewed less than leaseDurationSeconds ago)."""
        current: dict[str, Any] | None = None
        for _ in range(ATTEMPTS):
            current = self.api.find(*LEASE, self.namespace, self.name)
            if current is not None and self._held_by_another(current):
                raise self._refusal(current)
            try:
                if current is None:
                    self.api.create(self._lease(None))
                else:
                    self.api.replace(self._lease(current))
            except Conflict:  # another process wrote it since we read: read who
                continue
            self.lost = None
            return
        current = self.api.find(*LEASE, self.namespace, self.name) or current
        if current is not None and self._held_by_another(current):
            raise self._refusal(current)
        raise EndpointLeased(
            f"endpoint {self.endpoint!r}: its Lease {self.namespace}/{self.name} changed under "
            f"every one of {ATTEMPTS} attempts to take it; try again"
        )

    def renew(self) -> bool:
        """Move renewTime to now; False (and `lost` says why) once another process holds
        it. An API that does not answer is retried at the next renewal, until the Lease
        would have expired."""
        try:
            current = self.api.get(*LEASE, self.namespace, self.name)
            if _holder(current) != self.identity:
                self.lost = f"held by {_holder(current) or 'no one'} now"
                return False
            self.api.replace(self._lease(current, renewing=True))
        except Conflict:
            return True  # written meanwhile: read again at the next renewal
        except StackError as exc:
            if self._expired_for_us():
                self.lost = f"not renewed for {self.seconds} s ({exc})"
                return False
            return True
        self._renewed = self.clock()
        return True

    def release(self) -> None:
        """Clear the holder (a Lease another process took meanwhile is left alone)."""
        with contextlib.suppress(StackError):
            current = self.api.get(*LEASE, self.namespace, self.name)
            if _holder(current) != self.identity:
                return
            released = _copy(current)
            released["spec"].pop("holderIdentity", None)
            self.api.replace(released)

    # -- judging ------------------------------------------------------------------------

    def _held_by_another(self, lease: dict[str, Any]) -> bool:
        holder = _holder(lease)
        if not holder or holder == self.identity:
            return False
        return self._expires(lease) > self.clock()

    def _expires(self, lease: dict[str, Any]) -> datetime:
        spec = lease.get("spec") or {}
        renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
        if renewed is None:
            return datetime.min.replace(tzinfo=UTC)
        return renewed + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))

    def _expired_for_us(self) -> bool:
        renewed = self._renewed
        return renewed is None or self.clock() >= renewed + timedelta(seconds=self.seconds)

    def _refusal(self, lease: dict[str, Any]) -> EndpointLeased:
        now = self.clock()
        spec = lease.get("spec") or {}
        renewed = parse_time(spec.get("renewTime"))
        ago = f"renewed {(now - renewed).total_seconds():.0f} s ago, " if renewed else ""
        left = (self._expires(lease) - now).total_seconds()
        return EndpointLeased(
            f"endpoint {self.endpoint!r} is rolling out already from {_holder(lease)} "
            f"(it holds the Lease {self.namespace}/{self.name}: {ago}expires in {left:.0f} s "
            "unless renewed): let it end, or end it with `mlstack rollback MODEL --target "
            "kubernetes`; a holder that died stops renewing, and the Lease is free once it "
            "expires"
        )

    def _lease(self, current: dict[str, Any] | None, *, renewing: bool = False) -> dict[str, Any]:
        now = micro_time(self.clock())
        if current is None:
            lease: dict[str, Any] = {
                "apiVersion": LEASE[0],
                "kind": LEASE[1],
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {"app.kubernetes.io/name": dns_name(self.endpoint), **MANAGED},
                },
                "spec": {"leaseTransitions": 0},
            }
        else:
            lease = _copy(current)  # its resourceVersion: the API refuses a stale one
        spec = lease["spec"]
        if not renewing:
            if current is not None and _holder(current) != self.identity:
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            spec["acquireTime"] = now
        spec.update(
            {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.seconds,
                "renewTime": now,
            }
        )
        self._renewed = self.clock()
        return lease


def _holder(lease: dict[str, Any]) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _copy(lease: dict[str, Any]) -> dict[str, Any]:
    metadata = {
        key: value
        for key, value in (lease.get("metadata") or {}).items()
        if key in ("name", "namespace", "labels", "annotations", "resourceVersion")
    }
    return {
        "apiVersion": LEASE[0],
        "kind": LEASE[1],
        "metadata": metadata,
        "spec": dict(lease.get("spec") or {}),
    }


@contextlib.contextmanager
def holding(lease: RolloutLease) -> Iterator[RolloutLease]:
    """`lease` taken for the block (EndpointLeased when another holds it), renewed every
    third of its duration on a daemon thread, released at the end, however it ends."""
    lease.acquire()
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease.seconds / 3):
            if not lease.renew():
                return

    renewer = threading.Thread(target=renew, name=f"lease-{lease.name}", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join()
        lease.release()
