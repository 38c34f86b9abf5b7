"""The `server:` section of stack.yaml for the BentoML adapter."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from stack.config.stack_file import masked_url
from stack_mlflow.config import MlflowConnection

#: An endpoint's name, as `mlstack deploy --endpoint` takes it (server.py's `_check_name`).
EndpointName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")]


class Toleration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    operator: str = Field(default="Exists", pattern="^(Exists|Equal)$")
    value: str | None = None
    effect: str = Field(default="NoSchedule", pattern="^(NoSchedule|PreferNoSchedule|NoExecute)$")


#: The variable an endpoint's pod reads its PostgreSQL prediction log's URL from.
LOG_URL_ENV = "MLSTACK_PREDICTION_LOG_URL"


class SecretRef(BaseModel):
    """An environment variable of the endpoint's pods read from a Kubernetes Secret: only
    the Secret's name and key are written in the manifests, never its value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name.")
    secret: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", description="Secret name.")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class KedaScaling(BaseModel):
    """Scaling by KEDA (installed in the cluster) instead of a HorizontalPodAutoscaler: a
    ScaledObject per version on a Prometheus query of its request rate. `min_replicas: 0`
    scales an idle version to zero; the query must then count requests where they arrive
    while no pod runs (the gateway's metrics), since an endpoint's own metrics stop with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prometheus: str = Field(description="Prometheus server address, http://host:9090.")
    query: str = Field(
        default='sum(rate(mlstack_endpoint_requests_total{{endpoint="{endpoint}",'
        'version="{ref}"}}[1m]))',
        description="PromQL; {endpoint}, {ref} and {service} (the version's Service) filled.",
    )
    requests_per_second: float = Field(default=10.0, gt=0, description="Per replica.")
    min_replicas: int = Field(default=1, ge=0)
    cooldown_seconds: int = Field(default=300, ge=0, description="Idle time before zero.")


class EndpointResources(BaseModel):
    """One endpoint's own pod size and scale on the cluster, where it differs from the
    `kubernetes:` defaults (an LLM endpoint on a GPU beside CPU models): each field set here
    replaces the default of the same name for that endpoint's pods alone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: str | None = None
    memory: str | None = None
    gpus: int | None = Field(default=None, ge=0, description="GPUs per replica.")
    node_selector: dict[str, str] | None = None
    tolerations: tuple[Toleration, ...] | None = None
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)


class KubernetesTarget(BaseModel):
    """How endpoints run on the cluster (`mlstack deploy --target kubernetes`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(default="mlstack-serving", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    image: str = Field(
        default="mlstack-endpoint:{model}-v{version}",
        description="The image built from the version's bento; {model} and {version} are filled.",
    )
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = Field(
        default=0,
        ge=0,
        description="GPUs per replica (nvidia.com/gpu) of every endpoint; one endpoint's "
        "own: `endpoints: {NAME: {gpus: 1}}`.",
    )
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Every pod's nodeSelector (GPU pods: see below)."
    )
    tolerations: tuple[Toleration, ...] = Field(default=(), description="Every pod's.")
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"mlstack.io/gpu": "true"},
        description="Where a pod that requests GPUs runs, unless node_selector says: the "
        "label infra/pulumi puts on its GPU pools.",
    )
    gpu_tolerations: tuple[Toleration, ...] = Field(
        default=(),
        description="What a pod that requests GPUs tolerates besides `nvidia.com/gpu` "
        "(always added): the GPU pools' other taints, e.g. Azure spot's (the stack file the "
        "infra program exports lists them). Pods without GPUs tolerate none of them, so "
        "they never take a GPU node's room.",
    )
    priority_class: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The pods' priorityClassName, e.g. `mlstack-serving`, the PriorityClass "
        "the infra program creates (endpoints scheduled before batch work; the stack file it "
        "exports sets it). None by default: a class the cluster lacks makes the API refuse "
        "every pod.",
    )
    min_replicas: int = Field(default=2, ge=1)
    max_replicas: int = Field(default=10, ge=1)
    target_cpu_utilization: int = Field(default=70, ge=1, le=100)
    keda: KedaScaling | None = Field(
        default=None, description="Scale with KEDA (when installed) instead of an HPA."
    )
    gateway: str = Field(
        default="mlstack-gateway",
        description="The Gateway the HTTPRoute attaches to (infra/pulumi creates "
        "mlstack-gateway in the serving namespace).",
    )
    gateway_namespace: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Where that Gateway is; None: the serving namespace.",
    )
    proxy_namespace: str | None = Field(
        default="envoy-gateway-system",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Where the Gateway implementation runs the proxy pods that carry the "
        "traffic (Envoy Gateway, as infra/pulumi installs it: envoy-gateway-system): the "
        "endpoints' NetworkPolicy admits it. None: the Gateway's namespace (implementations "
        "that run their proxies beside the Gateway).",
    )
    hostname: str | None = Field(
        default=None,
        description="The host the route answers for, and the URL deploy prints; else the "
        "URL is the Gateway's address (its status).",
    )
    endpoints: dict[EndpointName, EndpointResources] = Field(
        default_factory=dict,
        description="Per endpoint (by name), what differs from the defaults above: "
        "`{llm-qa: {gpus: 1, memory: 16Gi}}` puts that endpoint alone on the GPU pools "
        "(gpu_node_selector, gpu_tolerations).",
    )
    retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="How many times the gateway sends a request again, to any version's "
        "pod, when the pod that had it died or reset the connection before answering (a "
        "kill -9, an OOM kill, a node lost): an Envoy Gateway BackendTrafficPolicy on the "
        "route, where the cluster serves that CRD. Each retry is one more pod a request that "
        "kills every pod it reaches can kill. 0: none.",
    )
    termination_grace_seconds: int = Field(default=30, ge=1)
    secrets: tuple[SecretRef, ...] = Field(
        default=(),
        description="Environment from Secrets, by reference (the prediction log's URL: "
        "env MLSTACK_PREDICTION_LOG_URL).",
    )
    kubeconfig: str | None = Field(
        default=None, description="Kubeconfig file; else $KUBECONFIG, else in-cluster."
    )
    context: str | None = Field(default=None, description="Kubeconfig context; else current.")
    ready_timeout_seconds: float = Field(
        default=600.0, gt=0, description="How long a version's pods may take to be ready."
    )
    poll_seconds: float = Field(
        default=2.0, gt=0, description="How often readiness is asked of the API meanwhile."
    )
    lease_seconds: int = Field(
        default=30,
        ge=1,
        description="A rollout's Lease on its endpoint: renewed every third of this; a "
        "holder that died frees it this long after its last renewal.",
    )

    def for_endpoint(self, endpoint: str) -> KubernetesTarget:
        """These defaults with `endpoints[endpoint]`'s fields in their place (self when the
        endpoint has none)."""
        own = self.endpoints.get(endpoint)
        if own is None:
            return self
        return self.model_copy(update=own.model_dump(exclude_none=True))


class PredictionLogConfig(BaseModel):
    """The prediction log in PostgreSQL (production); without it, parquet under the home."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^postgresql(\+\w+)?://", description="postgresql://user@host/db")
    password: SecretStr | None = None
    table: str = Field(default="mlstack_predictions", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")

    @property
    def safe_url(self) -> str:
        """The URL with any password replaced by ***, fit to print."""
        return masked_url(self.url, password=self.password is not None)

    def connect_url(self) -> str:
        if self.password is None:
            return self.url
        from sqlalchemy.engine import make_url

        with_password = make_url(self.url).set(password=self.password.get_secret_value())
        return with_password.render_as_string(hide_password=False)


class BentoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Bind address; loopback by default.")
    port: int = Field(default=3000, ge=1, le=65535, description="First port; endpoints count up.")
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes per endpoint.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Larger bodies get 413.")
    max_rows: int = Field(default=1000, ge=1, description="Rows per request, at most.")
    ab_header: str = Field(
        default="x-mlstack-subject", description="Request header whose value pins an A/B arm."
    )
    log_flush_seconds: float = Field(default=1.0, gt=0, le=60)
    metrics: bool = Field(
        default=True,
        description="Serve Prometheus metrics on each endpoint's /metrics (needs the "
        "observability extra: prometheus-client).",
    )
    ready_timeout_seconds: float = Field(
        default=180.0, gt=0, description="How long starting or loading a version may take."
    )
    split_ack_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a route waits for every worker to put a split in force, times "
        "the machine's load per core when above 1; past it the route is refused.",
    )
    bentoml_home: str = Field(default="bentoml", description="Relative to the stack's home.")
    models_from: MlflowConnection = Field(
        default_factory=MlflowConnection,
        description="The MLflow that holds the versions' files: the registry's; empty means the "
        "embedded store under the stack's home, as for the MLflow adapter.",
    )
    kubernetes: KubernetesTarget = Field(default_factory=KubernetesTarget)
    prediction_log: PredictionLogConfig | None = None
