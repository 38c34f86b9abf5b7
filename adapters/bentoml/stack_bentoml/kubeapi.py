"""The Kubernetes API as the cluster router uses it, through the official client (imported
on first use): server-side apply with field manager `mlstack`, get, list by label, delete,
create and replace (a rollout's Lease: a replace carries the resourceVersion it read, and a
409 is `Conflict`), and discovery (which resources an API group serves).

Apply is `PATCH …?fieldManager=mlstack&force=true` with `application/apply-patch+yaml`, as
the API documents for a controller that owns its fields (force: mlstack's apply wins a
conflict with a hand edit of the same field, which the next apply would undo anyway). The
typed APIs of client 30 cannot send that content type, so requests go through
`ApiClient.call_api`, as the client's own DynamicClient does, without its discovery calls."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from stack.errors import NotFound, StackError

FIELD_MANAGER = "mlstack"
APPLY = "application/apply-patch+yaml"

#: The resource (plural) of each kind mlstack applies or reads.
PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "Pod": "pods",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "HTTPRoute": "httproutes",
    "BackendTrafficPolicy": "backendtrafficpolicies",
    "Gateway": "gateways",
    "ScaledObject": "scaledobjects",
    "Lease": "leases",
}


class Conflict(StackError):
    """The API refused a write with 409: the name exists already (create), or the object
    changed since it was read (replace with a stale resourceVersion)."""


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """`/apis/apps/v1/namespaces/ns/deployments/name` (core kinds under `/api/v1`)."""
    if kind not in PLURALS:
        raise StackError(f"mlstack does not apply {kind} objects")
    group = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{group}/namespaces/{namespace}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


class KubeApi:
    """One cluster's API. Errors are StackError naming the object and the API's answer
    (NotFound for a 404 where the caller asked for one)."""

    def __init__(self, api_client: Any) -> None:
        """`api_client`: a `kubernetes.client.ApiClient` configured for the cluster."""
        self.client = api_client

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> KubeApi:
        """The cluster `kubeconfig` (else $KUBECONFIG, else ~/.kube/config) names, or the
        pod's service account when run inside the cluster with no kubeconfig."""
        try:
            from kubernetes import config  # type: ignore[import-untyped]
        except ImportError as exc:
            raise StackError(
                "the cluster path needs the Kubernetes client (mlstack's `kubernetes` extra): "
                "in the mlstack checkout, `make sync` installs it (docs/serving.md, step 1)"
            ) from exc
        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        if not os.path.isfile(path.split(os.pathsep)[0]) and "KUBERNETES_SERVICE_HOST" in (
            os.environ
        ):
            from kubernetes import client

            config.load_incluster_config()
            return cls(client.ApiClient())
        try:
            return cls(config.new_client_from_config(config_file=path, context=context))
        except (config.ConfigException, OSError) as exc:
            raise StackError(
                f"no cluster to deploy to: kubeconfig {path!r}: {exc} (set KUBECONFIG, or "
                "server.kubernetes.kubeconfig in the stack file)"
            ) from exc

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply of `obj` (its whole intent: fields mlstack applied before and
        left out now are removed); the object as the API stored it."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        return self._call(path, "PATCH", query=query, body=dict(obj), content_type=APPLY)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The object; NotFound when there is none."""
        return self._call(resource_path(api_version, kind, namespace, name), "GET")

    def find(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.get(api_version, kind, namespace, name)
        except NotFound:
            return None

    def select(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """The objects whose labels match `selector` (every key equal)."""
        labels = ",".join(f"{key}={value}" for key, value in selector.items())
        path = resource_path(api_version, kind, namespace)
        found = self._call(path, "GET", query=[("labelSelector", labels)])
        items: list[dict[str, Any]] = found.get("items") or []
        return items

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """`obj` created; Conflict when an object of its name exists."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        return self._call(path, "POST", body=dict(obj))

    def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """`obj` stored in place of the object of its name; Conflict when that object
        changed since `obj`'s `metadata.resourceVersion` was read."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return self._call(path, "PUT", body=dict(obj))

    def resources(self, api_version: str) -> set[str] | None:
        """The resources (plurals) the API serves in `api_version`
        (`gateway.networking.k8s.io/v1`), or None when it serves no such group version
        (its CRDs are not installed)."""
        group = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            found = self._call(group, "GET")
        except NotFound:
            return None
        return {str(r.get("name")) for r in found.get("resources") or []}

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (its pods and other dependents in the background); False when it was
        already gone."""
        path = resource_path(api_version, kind, namespace, name)
        try:
            self._call(path, "DELETE", query=[("propagationPolicy", "Background")])
        except NotFound:
            return False
        return True

    def _call(
        self,
        path: str,
        method: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped]
        from urllib3.exceptions import HTTPError

        try:
            answer = self.client.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=30,
            )
        except ApiException as exc:
            reason = _message(exc)
            if exc.status == 404:
                raise NotFound(f"{path}: not found on the cluster ({reason})") from exc
            if exc.status == 409:
                raise Conflict(f"the Kubernetes API refused {method} {path}: {reason}") from exc
            raise StackError(
                f"the Kubernetes API refused {method} {path}: {exc.status} {reason}"
            ) from exc
        except HTTPError as exc:
            host = self.client.configuration.host
            raise StackError(f"cannot reach the Kubernetes API at {host}: {exc}") from exc
        return dict(answer or {})


def _message(exc: Any) -> str:
    """The API's own sentence (a Status object's `message`), else the HTTP reason."""
    import json

    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)
