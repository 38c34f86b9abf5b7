"""The cluster's Router: the objects of kubernetes.py applied to a Kubernetes cluster, for
the same RolloutController that drives endpoints on this machine.

- `deploy` and `add_version` apply a version's objects by server-side apply (kubeapi.py);
  `route` moves the HTTPRoute's weights once every version it gives traffic to (or mirrors
  to) has a ready pod, and removes the objects of versions the new split no longer names.
  A version whose pods cannot come up is refused at once, not at the timeout: a container
  crash-looping, an image that never pulls, a config that cannot be made. The refused route
  changes nothing (the controller then rolls back to the champion).
- `health` is the evidence the judge reads locally: the prediction log the pods write (the
  production stack's PostgreSQL table, `server.prediction_log`), plus, from the API, each
  routed version's pods: crash loops, pull failures, readiness lost and restarts since the
  version was routed are `failing` (a breach), whatever the log says.
- One rollout at a time per endpoint, from any machine: `hold` takes the endpoint's Lease
  (kubelease.py) for the controller's whole deploy, and a route made after this process
  lost it (its renewals failed until another took it) is refused.
- The Gateway API is required: before anything is read or applied, discovery must show
  `gateway.networking.k8s.io/v1` serving `httproutes`, and the Gateway the route attaches to
  (`server.kubernetes.gateway`, which infra/pulumi creates) must exist; a cluster without
  either is an error saying what to install (docs/serving.md says why no ConfigMap
  fallback). Where the Gateway cannot be read (no RBAC right to), nothing is refused.
- An endpoint's URL is where the Gateway answers: `http://<hostname>` when the stack names
  one, else the address in the Gateway's status (its load balancer's, or its Service's
  cluster IP), else, while it has none, the command that shows it once it does.
- The cluster is the state: the split, revision and endpoint name are annotations of the
  HTTPRoute (kubernetes.py), so `endpoints()` (and `mlstack rollout status`, `rollback`,
  `undeploy`) from any machine read what the cluster serves, and the spine says how it
  came to be."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from stack.contract.registry import ModelVersion
from stack.contract.serving import Endpoint, HealthReport, TrafficSplit
from stack.errors import HealthUnreadable, NotFound, StackError
from stack_bentoml.config import BentoConfig
from stack_bentoml.kubeapi import PLURALS, KubeApi
from stack_bentoml.kubelease import LEASE, RolloutLease, holding, lease_name
from stack_bentoml.kubernetes import (
    ENDPOINT_KEY,
    MANAGED,
    REF_KEY,
    RETRY_POLICY,
    REVISION_KEY,
    VERSION_KINDS,
    dns_name,
    gateway_namespace,
    network_policy,
    retry_policy,
    route,
    split_of,
    version_labels,
    version_name,
    version_objects,
)

ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
GATEWAY = ("gateway.networking.k8s.io/v1", "Gateway")
#: What to install where the cluster has no Gateway API.
GATEWAY_API_HINT = (
    "install the Gateway API's standard CRDs (the standard-install.yaml of a release, "
    "https://gateway-api.sigs.k8s.io/guides/#installing-gateway-api) and a Gateway "
    "implementation (Envoy Gateway, Istio, Cilium, or your cloud's), then create the Gateway "
    "`server.kubernetes.gateway` names (infra/pulumi and infra/terraform install all three: "
    "docs/infra.md)"
)
#: Container states a pod does not leave by waiting: the version cannot come up.
STUCK = {
    "CrashLoopBackOff": "pods crash-looping",
    "ImagePullBackOff": "image never pulls",
    "ErrImagePull": "image never pulls",
    "InvalidImageName": "image name is invalid",
    "CreateContainerConfigError": "container cannot be configured",
    "CreateContainerError": "container cannot be created",
    "RunContainerError": "container cannot start",
}


class ClusterRouter:
    """Endpoints in `config.kubernetes.namespace` of the cluster `api` talks to."""

    def __init__(
        self,
        config: BentoConfig,
        api: KubeApi,
        predictions: Path,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`predictions`: the Parquet log folder, read when the stack names no PostgreSQL
        prediction log (a cluster's pods write theirs to PostgreSQL)."""
        self.config = config
        self.target = config.kubernetes
        self.api = api
        self.predictions = predictions
        self.sleep = sleep
        self._restarts: dict[tuple[str, str], int] = {}  # at routing, by (endpoint, ref)
        self._leases: dict[str, RolloutLease] = {}  # held now, by endpoint
        self._gateway_api = False  # discovery found it (asked once per router)
        self._address: str | None = None  # the Gateway's, once its status had one
        self._served: dict[str, set[str]] = {}  # resources served, by group version
        keda = self.target.keda
        # scaled to zero while idle (KEDA): no pod is no failure, and nothing to wait for
        self.to_zero = keda is not None and keda.min_replicas == 0

    # -- the Router ---------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self, endpoint: str) -> Iterator[RolloutLease]:
        """`endpoint`'s Lease held for the block (RolloutHold): EndpointLeased, naming the
        holder, while another process holds it."""
        self._require_gateway_api()
        lease = RolloutLease(
            self.api, self.target.namespace, endpoint, seconds=self.target.lease_seconds
        )
        with holding(lease):
            self._leases[endpoint] = lease
            try:
                yield lease
            finally:
                self._leases.pop(endpoint, None)

    def deploy(self, version: ModelVersion, *, endpoint: str) -> Endpoint:
        """`version` alone on `endpoint`: its objects applied, its pods ready, then all the
        traffic; other versions' objects removed."""
        self._apply_version(endpoint, version.ref)
        return self._route(endpoint, TrafficSplit({version.ref: 1.0}), self._current(endpoint))

    def add_version(self, version: ModelVersion, *, endpoint: str) -> None:
        """`version`'s objects applied beside the live ones; no traffic until routed (its
        pods are judged ready or stuck when a route gives it traffic). Refused while the
        route gives traffic to more than one version: a rollout (or an A/B) is running
        there, perhaps from another machine, and a second would undo its split."""
        current = self._current(endpoint)
        if current is None:
            raise NotFound(f"no endpoint {endpoint!r} on the cluster ({self._names()})")
        split = split_of(current)
        others = [ref for ref, w in split.weights.items() if w > 0][1:] + list(split.shadows)
        if others and version.ref not in split.weights:
            shares = ", ".join(f"{ref} {w:.0%}" for ref, w in split.weights.items())
            raise StackError(
                f"endpoint {endpoint!r} is rolling out already ({shares}"
                f"{', shadow ' + ', '.join(split.shadows) if split.shadows else ''}): let it "
                "end, or end it with `mlstack rollback MODEL --target kubernetes`"
            )
        self._apply_version(endpoint, version.ref)

    def route(self, endpoint: str, split: TrafficSplit) -> Endpoint:
        current = self._current(endpoint)
        if current is None:
            raise NotFound(f"no endpoint {endpoint!r} on the cluster ({self._names()})")
        return self._route(endpoint, split, current)

    def health(self, endpoint: str, *, since: datetime | None = None) -> HealthReport:
        """The prediction log's figures since `since`, `failing` versions from their pods,
        `ready` while the version with the most traffic has a ready pod and is not failing.
        HealthUnreadable (naming the log and what failed, with what the pods say) when the
        PostgreSQL prediction log cannot be read."""
        from stack_bentoml.health import health_report

        current = self._current(endpoint)
        if current is None:
            raise NotFound(f"no endpoint {endpoint!r} on the cluster ({self._names()})")
        split = split_of(current)
        failing: dict[str, str] = {}
        for ref in [*split.weights, *split.shadows]:
            if split.weights.get(ref, 1.0) == 0:
                continue  # kept as a fallback, taking no traffic: not judged
            why = self._failing(endpoint, ref)
            if why is not None:
                failing[ref] = why
        heaviest = max(split.weights, key=lambda ref: split.weights[ref])
        pods = self._pods(endpoint, heaviest)
        idle = self.to_zero and not pods
        ready = heaviest not in failing and (idle or any(_pod_ready(pod) for pod in pods))
        rows = self._log_rows(endpoint, since, ready=ready, failing=failing)
        return health_report(endpoint, mirrored(rows, split.shadows), ready=ready, failing=failing)

    def _log_rows(
        self, endpoint: str, since: datetime | None, *, ready: bool, failing: dict[str, str]
    ) -> list[dict[str, Any]]:
        """The endpoint's logged rows since `since`; HealthUnreadable (with `ready` and
        `failing`, what the pods say) when the PostgreSQL log cannot be read."""
        from stack_bentoml.logread import log_rows

        log = self.config.prediction_log
        if log is None:
            return log_rows(self.config, self.predictions, endpoint, since)
        import psycopg

        try:
            return log_rows(self.config, self.predictions, endpoint, since)
        except psycopg.Error as exc:
            said = (str(exc).strip().splitlines() or [""])[0]
            raise HealthUnreadable(
                f"the prediction log {log.safe_url} (table {log.table}) could not be read for "
                f"endpoint {endpoint!r}: {type(exc).__name__}: {said} (the pods write it and "
                "rollouts judge on it: check that this machine reaches the database and has "
                "its password)",
                ready=ready,
                failing=failing,
            ) from exc

    def endpoints(self) -> list[Endpoint]:
        self._require_gateway_api()
        routes = self.api.select(*ROUTE, self.target.namespace, MANAGED)
        return [self._endpoint(r) for r in routes if ENDPOINT_KEY in _annotations(r)]

    def undeploy(self, endpoint: str) -> None:
        """The HTTPRoute, then every version's objects, the NetworkPolicy, the retry
        policy and the endpoint's rollout Lease, deleted: only kinds the cluster serves (no
        ScaledObject where KEDA is not installed), those already gone skipped. A delete the
        API refuses (an RBAC 403, say) does not stop the others: the rest are deleted, then
        StackError names each object left, its kind and the API's answer."""
        current = self._current(endpoint)
        if current is None:
            raise NotFound(f"no endpoint {endpoint!r} on the cluster ({self._names()})")
        namespace = self.target.namespace
        left: list[str] = []
        self._delete(ROUTE, dns_name(endpoint), left)
        for ref in self._loaded(endpoint):
            self._remove_version(endpoint, ref, left)
        self._delete(("networking.k8s.io/v1", "NetworkPolicy"), dns_name(endpoint), left)
        self._delete(RETRY_POLICY, dns_name(endpoint), left)
        self._delete(LEASE, lease_name(endpoint), left)
        if left:
            raise StackError(
                f"endpoint {endpoint!r} is only partly deleted from namespace {namespace!r}: "
                f"could not delete {'; '.join(left)} (the rest is deleted; delete these by "
                "hand, or grant the rights and run undeploy again)"
            )

    # -- applying -----------------------------------------------------------------------

    def _require_gateway_api(self) -> None:
        """StackError saying what to install unless the API serves HTTPRoutes."""
        if self._gateway_api:
            return
        group = ROUTE[0]
        served = self.api.resources(group)
        if served is None or "httproutes" not in served:
            found = "no such API group" if served is None else "no httproutes in it"
            raise StackError(
                f"the cluster at {self.api.client.configuration.host} has no Gateway API "
                f"({group} HTTPRoute: {found}), and mlstack moves traffic only through an "
                f"HTTPRoute; nothing was applied: {GATEWAY_API_HINT}"
            )
        namespace = gateway_namespace(self.target)
        try:
            self.api.get(*GATEWAY, namespace, self.target.gateway)
        except NotFound:
            raise StackError(
                f"the cluster at {self.api.client.configuration.host} has no Gateway "
                f"{self.target.gateway!r} in namespace {namespace!r}: a route attached to it "
                f"would carry no traffic; nothing was applied: {GATEWAY_API_HINT} (or set "
                "server.kubernetes.gateway and gateway_namespace to a Gateway you have)"
            ) from None
        except StackError:
            pass  # not ours to read (RBAC): the route attaches to it all the same
        self._gateway_api = True

    def _apply_version(self, endpoint: str, ref: str) -> None:
        self._require_gateway_api()
        for obj in version_objects(self.target, endpoint, ref):
            self.api.apply(obj)
        self.api.apply(network_policy(self.target, endpoint))
        if self._serves(RETRY_POLICY):  # Envoy Gateway's CRDs: other gateways retry their way
            policy = retry_policy(self.target, endpoint)
            if policy is None:  # retries: 0 now, perhaps not when the endpoint was made
                self.api.delete(*RETRY_POLICY, self.target.namespace, dns_name(endpoint))
            else:
                self.api.apply(policy)

    def _route(
        self, endpoint: str, split: TrafficSplit, current: dict[str, Any] | None
    ) -> Endpoint:
        lease = self._leases.get(endpoint)
        if lease is not None and lease.lost is not None:
            raise StackError(
                f"this process lost the Lease of endpoint {endpoint!r} ({lease.lost}): the "
                "rollout there is another's now; nothing was routed"
            )
        loaded = self._loaded(endpoint)
        missing = [ref for ref in [*split.weights, *split.shadows] if ref not in loaded]
        if missing:
            raise StackError(
                f"{', '.join(missing)} not loaded on endpoint {endpoint!r} (loaded: "
                f"{', '.join(loaded) or 'none'}): deploy or add it first"
            )
        taking = [ref for ref in [*split.weights, *split.shadows] if split.weights.get(ref, 1) > 0]
        for ref in taking:
            self._wait_ready(endpoint, ref)
        revision = int(_annotations(current).get(REVISION_KEY, 0)) + 1 if current else 1
        applied = self.api.apply(route(self.target, endpoint, split, revision))
        for ref in taking:  # restarts from here on are the version's, in this split
            self._restarts[(endpoint, ref)] = self._restart_count(endpoint, ref)
        for ref in loaded:
            if ref not in split.weights and ref not in split.shadows:
                self._remove_version(endpoint, ref)
        return self._endpoint(applied)

    def _remove_version(self, endpoint: str, ref: str, left: list[str] | None = None) -> None:
        """`ref`'s objects deleted, of the kinds the cluster serves. With `left`, a delete
        the API refuses is added to it (`Kind name: answer`) and the others go on;
        without, it raises."""
        name = version_name(endpoint, ref)
        for kind in VERSION_KINDS:
            if left is None:
                if self._serves(kind):
                    self.api.delete(*kind, self.target.namespace, name)
            else:
                self._delete(kind, name, left)
        self._restarts.pop((endpoint, ref), None)

    def _delete(self, kind: tuple[str, str], name: str, left: list[str]) -> None:
        """`name` of `kind` (apiVersion, kind) deleted when the cluster serves the kind;
        a refusal added to `left` as `Kind name: the API's answer`."""
        try:
            if self._serves(kind):
                self.api.delete(*kind, self.target.namespace, name)
        except StackError as exc:
            left.append(f"{kind[1]} {name}: {exc}")

    def _serves(self, kind: tuple[str, str]) -> bool:
        """Whether discovery shows the cluster serving `kind` (apiVersion, kind): a
        ScaledObject only where KEDA's CRDs are installed. Asked once per group version."""
        api_version, name = kind
        if api_version not in self._served:
            self._served[api_version] = self.api.resources(api_version) or set()
        return PLURALS[name] in self._served[api_version]

    # -- reading ------------------------------------------------------------------------

    def _current(self, endpoint: str) -> dict[str, Any] | None:
        self._require_gateway_api()
        return self.api.find(*ROUTE, self.target.namespace, dns_name(endpoint))

    def _loaded(self, endpoint: str) -> list[str]:
        """The versions with a Deployment on `endpoint`, by ref."""
        selector = {"app.kubernetes.io/name": dns_name(endpoint), **MANAGED}
        found = self.api.select("apps/v1", "Deployment", self.target.namespace, selector)
        return [_annotations(d)[REF_KEY] for d in found if REF_KEY in _annotations(d)]

    def _endpoint(self, obj: dict[str, Any]) -> Endpoint:
        annotations = _annotations(obj)
        return Endpoint(
            annotations[ENDPOINT_KEY],
            self._url(),
            int(annotations.get(REVISION_KEY, 1)),
            split_of(obj),
        )

    def _url(self) -> str:
        """Where the Gateway answers: `http://<hostname>`, else `http://<its address>`
        (its status: the load balancer's, or its Service's cluster IP), else, while it has
        none (or cannot be read), the Gateway's name and the command that shows its
        address."""
        if self.target.hostname:
            return f"http://{self.target.hostname}"
        namespace = gateway_namespace(self.target)
        if self._address is None:
            try:
                found = self.api.find(*GATEWAY, namespace, self.target.gateway)
            except StackError:
                found = None
            addresses = ((found or {}).get("status") or {}).get("addresses") or []
            value = next((str(a["value"]) for a in addresses if a.get("value")), None)
            if value is not None:
                self._address = f"[{value}]" if ":" in value else value
        if self._address is not None:
            return f"http://{self._address}"
        return (
            f"gateway {namespace}/{self.target.gateway} (no address yet: kubectl -n "
            f"{namespace} get gateway {self.target.gateway} "
            "-o jsonpath='{.status.addresses[0].value}')"
        )

    def _names(self) -> str:
        names = ", ".join(e.name for e in self.endpoints())
        return f"deployed there: {names or 'none'}"

    def _pods(self, endpoint: str, ref: str) -> list[dict[str, Any]]:
        selector = version_labels(endpoint, ref)
        return self.api.select("v1", "Pod", self.target.namespace, selector)

    def _restart_count(self, endpoint: str, ref: str) -> int:
        return sum(
            int(status.get("restartCount", 0))
            for pod in self._pods(endpoint, ref)
            for status in (pod.get("status") or {}).get("containerStatuses") or []
        )

    def _stuck(self, pods: list[dict[str, Any]]) -> str | None:
        """Why the pods cannot come up, in a few words with the API's own reason."""
        for pod in pods:
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (status.get("state") or {}).get("waiting") or {}
                reason = waiting.get("reason")
                if reason in STUCK:
                    restarts = int(status.get("restartCount", 0))
                    detail = f", {restarts} restarts" if restarts else ""
                    message = waiting.get("message")
                    said = f": {message}" if message else ""
                    return f"{STUCK[reason]} ({reason}{detail}, pod {_name(pod)}){said}"
        return None

    def _failing(self, endpoint: str, ref: str) -> str | None:
        """Why `ref`'s pods fail outside the app, or None: stuck, no ready pod (its
        readiness probe failing), or restarted since it was routed."""
        pods = self._pods(endpoint, ref)
        stuck = self._stuck(pods)
        if stuck is not None:
            return stuck
        if self.to_zero and not pods:
            return None
        if not any(_pod_ready(pod) for pod in pods):
            return f"no ready pod (readiness probe failing on {len(pods)} pods)"
        before = self._restarts.get((endpoint, ref))
        restarts = self._restart_count(endpoint, ref)
        if before is not None and restarts > before:
            return f"pods restarted {restarts - before} times since it took traffic"
        return None

    def _wait_ready(self, endpoint: str, ref: str) -> None:
        """Until `ref` has a ready pod; StackError at once when its pods are stuck, or
        after `ready_timeout_seconds` (readiness never came: its probe fails)."""
        deadline = time.monotonic() + self.target.ready_timeout_seconds
        while True:
            pods = self._pods(endpoint, ref)
            stuck = self._stuck(pods)
            if stuck is not None:
                raise StackError(f"{ref} cannot serve on the cluster: {stuck}")
            if any(_pod_ready(pod) for pod in pods) or (self.to_zero and not pods):
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{ref} has no ready pod after {self.target.ready_timeout_seconds:g} s "
                    f"({len(pods)} pods; readiness probe /readyz failing)"
                )
            self.sleep(self.target.poll_seconds)


def mirrored(rows: list[dict[str, Any]], shadows: tuple[str, ...]) -> list[dict[str, Any]]:
    """`rows` with the shadows' as the local log has them: role `shadow`, beside the live
    answer to the same request. A mirrored copy reaches the shadow's pods with the request's
    headers, x-request-id included (the gateway sets it), and they log it as an answer of
    theirs: joined by request id with the live version's answer, it says whether the shadow
    disagrees. A copy with no live answer to compare (the live version failed, or no
    request id was shared) counts for the shadow's errors and latency only."""
    if not shadows:
        return rows
    answered = {
        str(row["request_id"]): row["output"]
        for row in rows
        if row["role"] == "live"
        and row["model_version"] not in shadows
        and int(row["status"]) < 500
        and row["output"] is not None
    }
    joined = []
    for row in rows:
        if row["model_version"] in shadows and row["role"] == "live":
            live = answered.get(str(row["request_id"]))
            output = row["output"] if live is not None else None
            row = {**row, "role": "shadow", "output": output, "live_output": live}
        joined.append(row)
    return joined


def _annotations(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
