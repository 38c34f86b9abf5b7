"""A small Kubernetes API server over HTTP on 127.0.0.1, for the cluster router's tests.

It is not a mock of the Kubernetes client: the official client sends it real HTTP requests
from a kubeconfig, and it answers as the API does for what mlstack uses (server-side apply
PATCH, GET of an object or a list with an equality label selector, DELETE, 404 Status
objects; POST creating a Lease, 409 AlreadyExists when its name is taken; PUT replacing one,
409 Conflict when the resourceVersion sent is not the stored one; discovery of an API group
version, 404 for a group whose CRDs are not installed: `without_gateway_api()`; a refusal
of an apply by kind, `refused`, or of a delete by resource, `refused_deletes`), recording
each request as it came. Every write gives the object the cluster's next resourceVersion.
`after` (a callable given each request once answered, before its answer is sent) lets a
test act between two requests of a client, to force a race's interleaving. The kubelet is
played at once: each applied Deployment has pods whose state its image's behaviour says
(`ready`, `crashloop`, `pullfail`, `unready`, `zero`: scaled to no pod), changeable while a
rollout runs."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    code: int  # the status answered


@dataclass
class FakeCluster:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # by object path
    behaviours: dict[str, str] = field(default_factory=dict)  # by image; default ready
    restarts: dict[str, int] = field(default_factory=dict)  # by image
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)  # applies, by kind
    #: deletes answered with (code, message), by resource (`poddisruptionbudgets`)
    refused_deletes: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: API group versions served, with their resources (discovery)
    groups: dict[str, list[str]] = field(default_factory=lambda: dict(GROUPS))
    after: Callable[[Recorded], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    revision: int = 0  # the cluster's last resourceVersion

    def without_gateway_api(self) -> None:
        """As a cluster where the Gateway API's CRDs were never installed."""
        self.groups.pop("gateway.networking.k8s.io/v1", None)

    def gateway(self, namespace: str, name: str, address: str | None = None) -> None:
        """A Gateway `name` in `namespace`, with `address` in its status once its
        implementation gave it one (None: not yet)."""
        path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/gateways/{name}"
        obj: dict[str, Any] = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"gatewayClassName": "mlstack", "listeners": []},
        }
        if address is not None:
            obj["status"] = {"addresses": [{"type": "IPAddress", "value": address}]}
        with self.lock:
            self.store(path, obj)

    def leases(self) -> list[Recorded]:
        """The Lease reads and writes sent, in order."""
        return [r for r in self.requests if "/leases" in r.path]

    def applied(self, kind: str | None = None) -> list[Recorded]:
        """The server-side applies sent, in order (of `kind` when given)."""
        return [
            r
            for r in self.requests
            if r.method == "PATCH" and (kind is None or (r.body or {}).get("kind") == kind)
        ]

    def deleted(self) -> list[str]:
        return [r.path for r in self.requests if r.method == "DELETE"]

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- the API --------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            group = _group(path)
            if group is not None and group not in self.groups:
                return 404, _status(404, "the server could not find the requested resource")
            if method == "GET" and path.removeprefix("/apis/").removeprefix("/api/") == group:
                return 200, _resources(group, self.groups[group])
            if method == "POST":
                return self._create(path, body)
            if method == "PUT":
                return self._replace(path, body)
            if method == "PATCH":
                if (body or {}).get("kind") in self.refused:
                    code, message = self.refused[body["kind"]]
                    return code, _status(code, message)
                return 200, self._apply(path, body)
            if method == "DELETE":
                resource = path.rsplit("/", 2)[-2]
                if resource in self.refused_deletes:
                    code, message = self.refused_deletes[resource]
                    return code, _status(code, message, "Forbidden" if code == 403 else None)
                if self.objects.pop(path, None) is None:
                    return 404, _status(404, f"{path} not found")
                return 200, _status(200, "deleted")
            if method == "GET":
                if path in self.objects:
                    return 200, self._with_status(self.objects[path])
                if path.endswith("/pods"):
                    return 200, _list(self._pods(path.rsplit("/", 1)[0], query))
                if _is_collection(path):
                    found = [
                        self._with_status(obj)
                        for key, obj in self.objects.items()
                        if key.rsplit("/", 1)[0] == path and _matches(obj, query)
                    ]
                    return 200, _list(found)
                return 404, _status(404, f"{path} not found")
        return 405, _status(405, f"{method} not allowed")

    def _apply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._with_status(self.store(path, body))

    def store(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """`body` stored at `path` as a write would store it (its next resourceVersion)."""
        previous = self.objects.get(path)
        stored = json.loads(json.dumps(body))
        meta = stored["metadata"]
        generation = int((previous or {}).get("metadata", {}).get("generation", 0)) + 1
        self.revision += 1
        meta.update(
            {"generation": generation, "uid": f"uid-{path}", "resourceVersion": str(self.revision)}
        )
        self.objects[path] = stored
        return stored

    def _create(self, collection: str, body: dict[str, Any]) -> tuple[int, Any]:
        name = body["metadata"]["name"]
        path = f"{collection}/{name}"
        if path in self.objects:
            kind = collection.rsplit("/", 1)[1]
            return 409, _status(409, f'{kind} "{name}" already exists', "AlreadyExists")
        return 201, self.store(path, body)

    def _replace(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        stored = self.objects.get(path)
        if stored is None:
            return 404, _status(404, f"{path} not found")
        sent = str(body["metadata"].get("resourceVersion", ""))
        if sent != stored["metadata"]["resourceVersion"]:
            kind, name = path.rsplit("/", 2)[1:]
            return 409, _status(
                409,
                f'Operation cannot be fulfilled on {kind} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                "Conflict",
            )
        return 200, self.store(path, body)

    def _with_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("kind") != "Deployment":
            return obj
        state = self.behaviours.get(_image(obj), "ready")
        ready = 1 if state == "ready" else 0
        status = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": 1,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": 1,
        }
        return {**obj, "status": status}

    def _pods(self, namespace_path: str, query: dict[str, str]) -> list[dict[str, Any]]:
        pods = []
        prefix = namespace_path.replace("/api/v1/", "/apis/apps/v1/") + "/deployments/"
        for key, obj in self.objects.items():
            if not key.startswith(prefix) or obj.get("kind") != "Deployment":
                continue
            template = obj["spec"]["template"]
            pod = {"metadata": {"name": f"{obj['metadata']['name']}-0", **template["metadata"]}}
            if _matches(pod, query) and self.behaviours.get(_image(obj)) != "zero":
                pod["status"] = self._pod_status(_image(obj))
                pods.append(pod)
        return pods

    def _pod_status(self, image: str) -> dict[str, Any]:
        state = self.behaviours.get(image, "ready")
        restarts = self.restarts.get(image, 0)
        waiting = {
            "crashloop": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"},
            "pullfail": {"reason": "ImagePullBackOff", "message": f'Back-off pulling "{image}"'},
        }.get(state)
        container_state = {"waiting": waiting} if waiting else {"running": {}}
        ready = "True" if state == "ready" else "False"
        return {
            "phase": "Running" if state != "pullfail" else "Pending",
            "conditions": [{"type": "Ready", "status": ready}],
            "containerStatuses": [
                {
                    "name": "endpoint",
                    "image": image,
                    "ready": state == "ready",
                    "restartCount": restarts,
                    "state": container_state,
                }
            ],
        }


#: The API group versions a cluster with the Gateway API serves (discovery), as mlstack reads.
GROUPS = {
    "v1": ["pods", "services"],
    "apps/v1": ["deployments"],
    "autoscaling/v2": ["horizontalpodautoscalers"],
    "policy/v1": ["poddisruptionbudgets"],
    "networking.k8s.io/v1": ["networkpolicies"],
    "coordination.k8s.io/v1": ["leases"],
    "gateway.networking.k8s.io/v1": ["gateways", "httproutes", "grpcroutes"],
    "keda.sh/v1alpha1": ["scaledobjects"],
    "gateway.envoyproxy.io/v1alpha1": ["backendtrafficpolicies", "envoyproxies"],
}


def _group(path: str) -> str | None:
    """`apps/v1` for `/apis/apps/v1/...`, `v1` for `/api/v1/...`."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 2:
        return parts[1]
    if parts[0] == "apis" and len(parts) >= 3:
        return f"{parts[1]}/{parts[2]}"
    return None


def _resources(group: str, names: list[str]) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group,
        "resources": [{"name": name, "namespaced": True, "verbs": ["get"]} for name in names],
    }


def _image(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def _is_collection(path: str) -> bool:
    """`/api/v1/namespaces/ns/services`, `/apis/apps/v1/namespaces/ns/deployments`."""
    segments = len(path.strip("/").split("/"))
    return segments % 2 == (1 if path.startswith("/api/") else 0)


def _matches(obj: dict[str, Any], query: dict[str, str]) -> bool:
    selector = query.get("labelSelector", "")
    labels = obj.get("metadata", {}).get("labels") or {}
    wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
    return all(labels.get(k) == v for k, v in wanted.items())


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}


def _status(code: int, message: str, reason: str | None = None) -> dict[str, Any]:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "code": code,
    }
    if reason:
        status["reason"] = reason
    return status


@contextlib.contextmanager
def fake_cluster() -> Iterator[FakeCluster]:
    """A FakeCluster answering on a free port of 127.0.0.1 until the block ends."""
    cluster = FakeCluster()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = yaml.safe_load(raw) if raw else None
            content_type = self.headers.get("Content-Type", "")
            code, answer = cluster.handle(self.command, parts.path, query, body)
            recorded = Recorded(self.command, parts.path, query, content_type, body, code)
            cluster.requests.append(recorded)
            if cluster.after is not None:
                cluster.after(recorded)
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    cluster.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield cluster
    finally:
        server.shutdown()
        server.server_close()
