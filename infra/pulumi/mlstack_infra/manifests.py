"""The Kubernetes objects of the mlstack services, as plain manifests: rendered from the spec
and the cloud's endpoints, validated offline (kubernetes-validate) in the tests, and applied
by the `Services` component. Nothing here talks to a cluster."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlstack_infra.gateway import PROXY_NAMESPACE
from mlstack_infra.spec import InfraSpec

NAMESPACE = "mlstack"
SERVING = "mlstack-serving"
#: The port model endpoints serve on (stack_bentoml.kubernetes.PORT).
ENDPOINT_PORT = 3000
SERVING_PRIORITY = "mlstack-serving"  # the endpoints' PriorityClass
#: Where Kubeflow Pipelines runs (its released manifests): its steps track to MLflow.
KUBEFLOW = "kubeflow"
SECRET = "mlstack-database"  # keys: username, password (created by the program, never here)
DATABASE_USER = "mlstack"
DATABASES = ("mlflow", "feast", "mlstack")
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
#: The user and group an image runs as (runAsNonRoot alone is refused at admission for an
#: image whose USER is root or a name), by the service, not the reference: the spec's
#: `redis_image` and `feast_image` may name a mirror of the same image. Redis's `redis` (999,
#: group 1000 on alpine); the Feast image's (Red Hat UBI Python, USER 1001, group 0).
REDIS_USER = (999, 1000)
FEAST_USER = (1001, 0)
#: Images with no user of their own (MLflow's, python:*-slim; mlstack's) run as this one,
#: with HOME in /tmp: they write nothing else.
NON_ROOT = (1000, 1000)
#: On-prem's object store (its image carries the `mc` client the bucket is created with).
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
#: On-prem: MinIO's credentials (keys: access_key, secret_key), created by the program with a
#: generated key, never here; MinIO and MLflow read them by reference (secretKeyRef).
MINIO_SECRET = "mlstack-minio"
#: Azure workload identity: the service account's annotation, and the pod label without
#: which the webhook injects no token (AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE).
AZURE_CLIENT_ID = "azure.workload.identity/client-id"
AZURE_USE_IDENTITY = "azure.workload.identity/use"

Manifest = dict[str, Any]


def create_databases_script(names: tuple[str, ...] = DATABASES) -> str:
    """The shell script (psql, connection from the PG* environment) that creates each of
    `names` that is missing; run again, it changes nothing."""
    return (
        f"set -eu; for db in {' '.join(names)}; do "
        'if [ -z "$(psql -v ON_ERROR_STOP=1 -tAc '
        '"SELECT 1 FROM pg_database WHERE datname = \'$db\'")" ]; then '
        'psql -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"; fi; done'
    )


@dataclass(frozen=True)
class Endpoints:
    """What the cloud layer provides to the services."""

    artifact_root: str  # s3://bucket/mlflow, gs://bucket/mlflow, wasbs://…, s3://minio…
    database_host: str
    database_port: int = 5432
    service_account_annotations: dict[str, str] = field(default_factory=dict)
    artifact_env: dict[str, str] = field(default_factory=dict)  # e.g. MLFLOW_S3_ENDPOINT_URL
    device_plugin: bool = True  # GKE installs its own
    #: A Secret (keys access_key, secret_key) with the S3 credentials of the artifact store
    #: (on-prem: MINIO_SECRET); None where the services' cloud identity reaches it.
    artifact_secret: str | None = None


def render(spec: InfraSpec, endpoints: Endpoints) -> list[Manifest]:
    objects: list[Manifest] = [
        _namespace(NAMESPACE, {"pod-security.kubernetes.io/enforce": "baseline"}),
        _service_account("mlstack", endpoints.service_account_annotations),
    ]
    if spec.gpu_pools and endpoints.device_plugin:
        objects.append(_device_plugin(spec.gpu_tolerations()))
    if spec.target in ("aws", "onprem"):
        # GKE's Cloud SQL and Azure's flexible server get them as cloud resources; RDS creates
        # only its `db_name`, the on-prem server only POSTGRES_DB.
        objects.append(_create_databases(spec, endpoints))
    if spec.services.mlflow:
        objects += _mlflow(spec, endpoints)
    if spec.services.feast:
        objects += _feast(spec, endpoints)
    if spec.services.serving:
        from mlstack_infra import access  # it imports this module's names

        objects += _serving(spec) + access.manifests(spec)
    objects += [_monitoring_job(spec, job.model, job.schedule) for job in spec.services.monitoring]
    objects += _network_policies(spec)
    if AZURE_CLIENT_ID in endpoints.service_account_annotations:
        for obj in objects:
            _use_azure_identity(obj)
    return objects


def _use_azure_identity(obj: Manifest) -> None:
    """Azure's workload identity webhook gives a token only to pods labelled for it: label
    each pod of the services' account (its client id is the account's annotation)."""
    template = obj.get("spec", {}).get("template") or (
        obj.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template")
    )
    if template and template.get("spec", {}).get("serviceAccountName") == "mlstack":
        template.setdefault("metadata", {}).setdefault("labels", {})[AZURE_USE_IDENTITY] = "true"


def _meta(name: str, namespace: str | None = NAMESPACE, **extra: Any) -> Manifest:
    meta: Manifest = {"name": name, "labels": {"app.kubernetes.io/part-of": "mlstack"}}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def _namespace(
    name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> Manifest:
    meta = _meta(name, None)
    meta["labels"].update(labels)
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _service_account(name: str, annotations: dict[str, str]) -> Manifest:
    meta = _meta(name)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def _secure(container: Manifest) -> Manifest:
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return container


def run_as(user: tuple[int, int] = NON_ROOT) -> Manifest:
    """A pod's securityContext: not root, as `user` (user, group); volumes writable by its
    group."""
    uid, gid = user
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": gid, "fsGroup": gid}


def _pod(
    container: Manifest,
    *,
    account: str | None = "mlstack",
    user: tuple[int, int] | None = None,
) -> Manifest:
    """A pod spec running `container` as its image's non-root `user`; an image without a user
    of its own (None) runs as NON_ROOT with HOME=/tmp."""
    if user is None:
        container.setdefault("env", []).append({"name": "HOME", "value": "/tmp"})
    spec: Manifest = {"securityContext": run_as(user or NON_ROOT)}
    if account:
        spec["serviceAccountName"] = account
    spec["containers"] = [_secure(container)]
    return spec


def _deployment(
    name: str,
    container: Manifest,
    *,
    replicas: int = 1,
    account: str | None = "mlstack",
    user: tuple[int, int] | None = None,
) -> Manifest:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, "app.kubernetes.io/part-of": "mlstack"}},
                "spec": _pod(container, account=account, user=user),
            },
        },
    }


def _service(
    name: str, port: int, *, kind: str = "ClusterIP", namespace: str = NAMESPACE
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace),
        "spec": {
            "type": kind,
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": port, "targetPort": port}],
        },
    }


def _database_env() -> list[Manifest]:
    return [
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "username"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "password"}}},
    ]


def _create_databases(spec: InfraSpec, endpoints: Endpoints) -> Manifest:
    """A Job that creates the `mlflow`, `feast` and `mlstack` databases if missing, as the
    admin user of the database secret; it retries until the server answers."""
    env = [
        {"name": "PGHOST", "value": endpoints.database_host},
        {"name": "PGPORT", "value": str(endpoints.database_port)},
        {"name": "PGDATABASE", "value": "postgres"},
        {"name": "PGUSER", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "username"}}},
        {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "password"}}},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta("mlstack-databases"),
        "spec": {
            "backoffLimit": 20,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "mlstack-databases"}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 70, "runAsGroup": 70},
                    "containers": [
                        {
                            "name": "create-databases",
                            "image": spec.postgres_image,
                            "command": ["sh", "-c", create_databases_script()],
                            "env": env,
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _device_plugin(tolerations: list[Manifest]) -> Manifest:
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta("nvidia-device-plugin", "kube-system"),
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": {"mlstack.io/gpu": "true"},
                    "tolerations": tolerations,
                    "containers": [
                        {
                            "name": "nvidia-device-plugin",
                            "image": DEVICE_PLUGIN_IMAGE,
                            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {
                                    "name": "device-plugin",
                                    "mountPath": "/var/lib/kubelet/device-plugins",
                                }
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "device-plugin",
                            "hostPath": {"path": "/var/lib/kubelet/device-plugins"},
                        }
                    ],
                },
            },
        },
    }


#: What MLflow's server allows when `--allowed-hosts` is not given (MLflow 3,
#: mlflow/server/security_utils.py `get_default_allowed_hosts`: loopback names and the private
#: address ranges, fnmatch patterns). Copied, as neither infra path installs MLflow;
#: tests/infra/test_mlflow_hosts.py checks it against the installed MLflow's.
MLFLOW_DEFAULT_HOSTS = (
    "localhost",
    "127.0.0.1",
    "[::1]",
    "0.0.0.0",
    "localhost:*",
    "127.0.0.1:*",
    "[[]::1]:*",
    "0.0.0.0:*",
    "192.168.*",
    "10.*",
    *(f"172.{n}.*" for n in range(16, 32)),
    "fc00:*",
    "fd00:*",
)
#: The Host headers MLflow's server accepts: its Service's in-cluster names (with and without
#: the port), and MLflow's defaults (a port-forward's localhost, the private addresses).
MLFLOW_ALLOWED_HOSTS = (
    *(
        f"{name}{port}"
        for name in (
            "mlflow",
            f"mlflow.{NAMESPACE}",
            f"mlflow.{NAMESPACE}.svc",
            f"mlflow.{NAMESPACE}.svc.cluster.local",
        )
        for port in ("", ":5000")
    ),
    *MLFLOW_DEFAULT_HOSTS,
)


def _mlflow(spec: InfraSpec, endpoints: Endpoints) -> list[Manifest]:
    uri = f"postgresql://$(DB_USER):$(DB_PASSWORD)@{endpoints.database_host}:{endpoints.database_port}/mlflow"
    container: Manifest = {
        "name": "mlflow",
        "image": spec.mlflow_image,
        "args": [
            "mlflow",
            "server",
            "--host",
            "0.0.0.0",
            "--port",
            "5000",
            "--backend-store-uri",
            uri,
            "--serve-artifacts",
            "--artifacts-destination",
            endpoints.artifact_root,
            # MLflow 3 answers 403 to a Host header outside this list (DNS rebinding
            # protection; its default is localhost and private IPs only): the Service's
            # names, as pods in the cluster call it, and a port-forward's localhost
            "--allowed-hosts",
            ",".join(MLFLOW_ALLOWED_HOSTS),
        ],
        "env": [
            *_database_env(),
            {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
            *({"name": k, "value": v} for k, v in endpoints.artifact_env.items()),
        ],
        "ports": [{"containerPort": 5000}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 5000}},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
    }
    deployment = _deployment("mlflow", container, replicas=2)
    if endpoints.artifact_secret:
        credentials = s3_credentials_env(endpoints.artifact_secret)
        container["env"][len(_database_env()) : len(_database_env())] = credentials
        deployment["spec"]["template"]["spec"]["initContainers"] = [
            _create_bucket(endpoints, credentials)
        ]
    return [deployment, _service("mlflow", 5000)]


def s3_credentials_env(secret: str) -> list[Manifest]:
    """AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (what boto3, hence MLflow, reads) from
    `secret`'s access_key and secret_key, by reference."""
    return [
        {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "access_key"}},
        },
        {
            "name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "secret_key"}},
        },
    ]


def artifact_bucket(artifact_root: str) -> str:
    """The bucket of an `s3://bucket/prefix` artifact root."""
    return artifact_root.split("://", 1)[-1].split("/", 1)[0]


def _create_bucket(endpoints: Endpoints, credentials: list[Manifest]) -> Manifest:
    """MLflow's init container: creates the artifact bucket on the S3 endpoint if missing
    (`mc mb --ignore-existing`), so MLflow starts only once its bucket exists; it fails (and
    the kubelet retries it) until the store answers."""
    endpoint = endpoints.artifact_env["MLFLOW_S3_ENDPOINT_URL"]
    bucket = artifact_bucket(endpoints.artifact_root)
    script = (
        'set -eu; mc --config-dir /tmp/.mc alias set store "$MLFLOW_S3_ENDPOINT_URL" '
        '"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null; '
        f"mc --config-dir /tmp/.mc mb --ignore-existing store/{bucket}"
    )
    return _secure(
        {
            "name": "create-bucket",
            "image": MINIO_IMAGE,
            "command": ["sh", "-c", script],
            "env": [
                {"name": "MLFLOW_S3_ENDPOINT_URL", "value": endpoint},
                *credentials,
                {"name": "HOME", "value": "/tmp"},
            ],
        }
    )


def _feast(spec: InfraSpec, endpoints: Endpoints) -> list[Manifest]:
    redis: Manifest = {
        "name": "redis",
        "image": spec.redis_image,
        "args": ["--save", "", "--appendonly", "no"],
        "ports": [{"containerPort": 6379}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
    }
    store = {
        "project": "mlstack",
        "provider": "local",
        "registry": {
            "registry_type": "sql",
            # Kubernetes expands $(VAR) only in command, args and env: the URL is built in
            # the env, and Feast substitutes ${VAR} when it reads feature_store.yaml.
            "path": "${FEAST_REGISTRY_URL}",
        },
        "online_store": {"type": "redis", "connection_string": f"redis.{NAMESPACE}:6379"},
        "entity_key_serialization_version": 3,
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("feast-repo"),
        "data": {"feature_store.yaml": json.dumps(store, indent=2)},
    }
    server: Manifest = {
        "name": "feature-server",
        "image": spec.feast_image,
        "args": ["feast", "--chdir", "/repo", "serve", "--host", "0.0.0.0", "--port", "6566"],
        "env": [
            *_database_env(),
            {
                "name": "FEAST_REGISTRY_URL",
                "value": f"postgresql://$(DB_USER):$(DB_PASSWORD)@{endpoints.database_host}:"
                f"{endpoints.database_port}/feast",
            },
            {"name": "FEAST_USAGE", "value": "False"},
        ],
        "ports": [{"containerPort": 6566}],
        "volumeMounts": [{"name": "repo", "mountPath": "/repo"}],
    }
    deployment = _deployment("feature-server", server, user=FEAST_USER)
    deployment["spec"]["template"]["spec"]["volumes"] = [
        {"name": "repo", "configMap": {"name": "feast-repo"}}
    ]
    return [
        _deployment("redis", redis, account=None, user=REDIS_USER),  # no cloud identity
        _service("redis", 6379),
        config,
        deployment,
        _service("feature-server", 6566),
    ]


def _serving(spec: InfraSpec) -> list[Manifest]:
    """The namespace model endpoints are deployed into: GPU pods tolerate the GPU taint (and
    on Azure the spot taint of spot GPU pools) by default there, get a priority above batch
    work, and only the gateway's proxies (Envoy Gateway's, in PROXY_NAMESPACE) reach the
    endpoints' port; the Gateway itself is gateway.py's."""
    tolerations = json.dumps(spec.gpu_tolerations())
    objects: list[Manifest] = [
        _namespace(
            SERVING,
            {"pod-security.kubernetes.io/enforce": "baseline"},
            {"scheduler.alpha.kubernetes.io/defaultTolerations": tolerations},
        ),
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": _meta(SERVING_PRIORITY, None),
            "value": 100000,
            "globalDefault": False,
            "description": "Model endpoints: scheduled before batch and training pods.",
        },
        network_policy(
            "only-the-gateway",
            SERVING,
            None,
            [
                {"from": [_namespace_peer(SERVING)]},
                {"from": [_namespace_peer(NAMESPACE)]},
                from_namespaces([PROXY_NAMESPACE], ENDPOINT_PORT),
                *_scrapers(spec),
            ],
        ),
    ]
    return objects


def network_policy(
    name: str, namespace: str, pods: dict[str, str] | None, ingress: list[Manifest]
) -> Manifest:
    """An ingress NetworkPolicy for the pods labelled `pods` (None: every pod of `namespace`)
    admitting only what `ingress` lists (empty: nothing)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace),
        "spec": {
            "podSelector": {"matchLabels": dict(pods)} if pods else {},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def _namespace_peer(name: str) -> Manifest:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def from_namespaces(names: list[str], port: int) -> Manifest:
    """An ingress rule: pods of the namespaces `names`, on TCP `port` only."""
    return {
        "from": [_namespace_peer(n) for n in names],
        "ports": [{"port": port, "protocol": "TCP"}],
    }


def _network_policies(spec: InfraSpec) -> list[Manifest]:
    """Ingress denied by default in each mlstack namespace, then opened service by service:
    MLflow, Feast and Redis (and on-prem PostgreSQL) to the mlstack and serving namespaces
    (and Kubeflow's, whose pipeline steps track to MLflow), on-prem MinIO to the mlstack
    namespace (MLflow proxies the artifacts). The serving namespace's are `_serving`'s: its
    endpoints reached by the gateway's proxies, which run in Envoy Gateway's namespace."""
    clients = [NAMESPACE, SERVING] + ([KUBEFLOW] if spec.services.kubeflow_pipelines else [])
    allowed: list[tuple[str, int, list[str]]] = []
    if spec.services.mlflow:
        allowed.append(("mlflow", 5000, clients))
    if spec.services.feast:
        allowed += [("feature-server", 6566, clients), ("redis", 6379, clients)]
    if spec.target == "onprem":
        allowed += [("postgres", 5432, clients), ("minio", 9000, [NAMESPACE])]
    objects = [network_policy("default-deny-ingress", NAMESPACE, None, [])]
    objects += [
        network_policy(
            f"allow-{app}",
            NAMESPACE,
            {"app.kubernetes.io/name": app},
            [from_namespaces(names, port)],
        )
        for app, port, names in allowed
    ]
    if spec.services.serving:
        objects.append(network_policy("default-deny-ingress", SERVING, None, []))
    return objects


def _scrapers(spec: InfraSpec) -> list[Manifest]:
    """Prometheus' namespace may reach the endpoints' port (for `/metrics`), nothing else."""
    if spec.services.prometheus is None:
        return []
    namespace = {"matchLabels": {"kubernetes.io/metadata.name": spec.services.prometheus.namespace}}
    return [
        {
            "from": [{"namespaceSelector": namespace}],
            "ports": [{"port": ENDPOINT_PORT, "protocol": "TCP"}],
        }
    ]


def _monitoring_job(spec: InfraSpec, model: str, schedule: str) -> Manifest:
    name = f"monitor-{model.lower().replace('_', '-').replace('.', '-')}"[:52]
    container: Manifest = {
        "name": "monitor",
        "image": spec.image,
        "args": ["monitor", "run", model],
        "env": [
            *_database_env(),
            {"name": "MLSTACK_STACK", "value": "/etc/mlstack/stack.yaml"},
        ],
        "volumeMounts": [{"name": "stack", "mountPath": "/etc/mlstack", "readOnly": True}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(name),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 1,
                    "template": {
                        "spec": {
                            **_pod(container),
                            "restartPolicy": "Never",
                            "volumes": [
                                {"name": "stack", "secret": {"secretName": "mlstack-stack"}}
                            ],
                        }
                    },
                }
            },
        },
    }
