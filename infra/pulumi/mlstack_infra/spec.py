"""The one spec a platform team writes (Pulumi config `mlstack:spec`), checked whole before
any resource is created: a bad value names its field."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from mlstack_infra import images
from mlstack_infra.images import PinnedImage

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_NAME = r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$"

Target = Literal["aws", "gcp", "azure", "onprem"]

REGION_FORMATS: dict[str, tuple[str, str]] = {
    "aws": (r"^[a-z]{2}(-gov)?-[a-z]+-\d$", "us-east-1"),
    "gcp": (r"^[a-z]+-[a-z]+\d$", "europe-west4"),
    "azure": (r"^[a-z]+[a-z0-9]*$", "westeurope"),
    "onprem": (r"^.+$", "dc-1"),
}

#: How each cloud names its machine types (on-prem: the nodes' own names, anything).
MACHINE_FORMATS: dict[str, tuple[str, str]] = {
    "aws": (r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$", "m6i.xlarge"),
    "gcp": (r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$", "n2-standard-8"),
    "azure": (r"^(Standard|Basic)_[A-Za-z0-9_-]+$", "Standard_D8s_v5"),
    "onprem": (r"^.+$", "dgx-a100"),
}
#: GKE's accelerator types (the node pool's `guest_accelerator`, checked by GKE at apply).
GCP_GPUS = frozenset(
    {
        "nvidia-tesla-k80",
        "nvidia-tesla-p4",
        "nvidia-tesla-p100",
        "nvidia-tesla-t4",
        "nvidia-tesla-v100",
        "nvidia-tesla-a100",
        "nvidia-a100-80gb",
        "nvidia-l4",
        "nvidia-h100-80gb",
        "nvidia-h100-mega-80gb",
        "nvidia-h200-141gb",
        "nvidia-b200",
        "nvidia-gb200",
    }
)
#: Elsewhere the GPU type is a node label (`mlstack.io/gpu-type`): a vendor and a model.
GPU_LABEL = r"^(nvidia|amd|intel)-[a-z0-9][a-z0-9-]*$"
_CRON_FIELD = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
_CRON = re.compile(rf"^{_CRON_FIELD}( +{_CRON_FIELD}){{4}}$")


def _cron(value: str) -> str:
    if not _CRON.match(value):
        raise ValueError(
            f"{value!r} is not a cron expression (five fields: minute hour day month weekday, "
            "like '*/15 * * * *')"
        )
    return value


def _ipv4_cidr(opens: str) -> Callable[[str], str]:
    """A check of an IPv4 CIDR that admits to `opens`: never 0.0.0.0/0."""

    def check(value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 CIDR ({exc})") from None
        if network.prefixlen == 0:
            raise ValueError(f"0.0.0.0/0 opens {opens} to all")
        return value

    return check


Cron = Annotated[str, AfterValidator(_cron)]
Cidr = Annotated[str, AfterValidator(_ipv4_cidr("the Kubernetes API"))]
WebhookCidr = Annotated[str, AfterValidator(_ipv4_cidr("Envoy Gateway's admission webhook"))]

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
#: AKS puts this taint on every spot pool (and refuses a spot pool's taints without it).
AZURE_SPOT_TAINT = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "value": "spot",
    "effect": "NoSchedule",
}


#: The cloud principals of `deployers`, by the target they are for.
DEPLOYER_FIELDS = {"aws_principals": "aws", "gcp_members": "gcp", "azure_groups": "azure"}


class SpecError(ValueError):
    """The spec is wrong; the message names each field at fault."""


class Taint(BaseModel):
    model_config = _FROZEN

    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class NodePool(BaseModel):
    model_config = _FROZEN

    name: str = Field(pattern=_NAME)
    machine_type: str = Field(min_length=1, description="m5.xlarge, n2-standard-8, Standard_D8s_v5")
    gpu_type: str | None = Field(
        default=None, description="nvidia-tesla-t4 / nvidia-l4 (GCP); informative on AWS/Azure"
    )
    gpu_count: int = Field(default=0, ge=0, le=16)
    min_size: int = Field(default=1, ge=0)
    max_size: int = Field(default=3, ge=1)
    spot: bool = False
    taints: tuple[Taint, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> NodePool:
        if self.gpu_count and not self.gpu_type:
            raise ValueError("gpu_count is set but gpu_type is not: name the GPU")
        if self.gpu_type and not self.gpu_count:
            raise ValueError("gpu_type is set but gpu_count is 0")
        if self.min_size > self.max_size:
            raise ValueError(f"min_size {self.min_size} is larger than max_size {self.max_size}")
        return self

    @property
    def has_gpu(self) -> bool:
        return self.gpu_count > 0

    def all_taints(self) -> list[dict[str, str]]:
        """GPU pools take only pods that ask for GPUs (the taint the device plugin tolerates)."""
        taints = [t.model_dump() for t in self.taints]
        if self.has_gpu and not any(t["key"] == GPU_TAINT["key"] for t in taints):
            taints.append(dict(GPU_TAINT))
        return taints

    def taints_on(self, target: str) -> list[dict[str, str]]:
        """`all_taints`, and on Azure a spot pool's taint, which AKS adds to its nodes."""
        taints = self.all_taints()
        if target == "azure" and self.spot and AZURE_SPOT_TAINT not in taints:
            taints.append(dict(AZURE_SPOT_TAINT))
        return taints

    def all_labels(self) -> dict[str, str]:
        labels = {"mlstack.io/pool": self.name, **self.labels}
        if self.has_gpu:
            labels.update({"mlstack.io/gpu": "true", "mlstack.io/gpu-type": str(self.gpu_type)})
        return labels


class MonitoringJob(BaseModel):
    model_config = _FROZEN

    model: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    schedule: Cron = Field(default="*/15 * * * *", description="cron")


class PrometheusScraping(BaseModel):
    """How the cluster's Prometheus (e.g. kube-prometheus-stack) reaches the endpoints'
    `/metrics`: a PodMonitor in the serving namespace, the serving NetworkPolicy opened to
    its namespace on the endpoints' port, and the dashboards as ConfigMaps Grafana's sidecar
    provisions (label `grafana_dashboard: "1"`)."""

    model_config = _FROZEN

    namespace: str = Field(
        default="monitoring",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Where Prometheus and Grafana run.",
    )
    pod_monitor: bool = Field(default=True, description="The Prometheus Operator's PodMonitor.")
    grafana_dashboards: bool = True


class Services(BaseModel):
    model_config = _FROZEN

    mlflow: bool = True
    feast: bool = True
    kubeflow_pipelines: bool = True
    serving: bool = True
    monitoring: tuple[MonitoringJob, ...] = ()
    prometheus: PrometheusScraping | None = Field(
        default=None,
        description="Off unless set (`prometheus: {}` for the defaults): the PodMonitor needs "
        "the Prometheus Operator's CRDs and the dashboards its namespace, which a bare "
        "cluster lacks (the services' apply would fail).",
    )


_AWS_PRINCIPAL = re.compile(
    r"^arn:aws(-[a-z]+)*:(iam|sts)::\d{12}:(role|user|assumed-role)/[\w+=,.@/-]+$"
)
_GCP_MEMBER = re.compile(r"^(user|group|serviceAccount):[^@\s]+@[^@\s]+\.[a-z]+$")
_ENTRA_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _aws_principal(value: str) -> str:
    if not _AWS_PRINCIPAL.match(value):
        raise ValueError(
            f"{value!r} is not an IAM role or user ARN (like "
            "'arn:aws:iam::123456789012:role/ml-deployers')"
        )
    return value


def _gcp_member(value: str) -> str:
    if not _GCP_MEMBER.match(value):
        raise ValueError(
            f"{value!r} is not an IAM member (like 'group:ml-deployers@example.com', "
            "'user:ana@example.com' or 'serviceAccount:ci@PROJECT.iam.gserviceaccount.com')"
        )
    return value


def _entra_id(value: str) -> str:
    if not _ENTRA_ID.match(value.lower()):
        raise ValueError(
            f"{value!r} is not an Entra group object id (a GUID, like "
            "'00000000-0000-0000-0000-000000000000': `az ad group show -g NAME --query id`)"
        )
    return value.lower()


def _own_group(value: str) -> str:
    if value.startswith("system:"):
        raise ValueError(
            f"{value!r} is a Kubernetes system group (its members are Kubernetes' own "
            "components): name a group of your own"
        )
    return value


class Deployers(BaseModel):
    """Who may run `mlstack deploy --target kubernetes`: a Role in the serving namespace
    with exactly the router's rights, bound to the Kubernetes group `group`, to the
    in-cluster ServiceAccount `mlstack/mlstack-deployer` (CI jobs, the orchestrator), and to
    the cloud principals listed for the spec's target (each list is for one target only)."""

    model_config = _FROZEN

    group: Annotated[str, AfterValidator(_own_group)] = Field(
        default="mlstack-deployers",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9:._@-]{0,62}$",
        description="The Kubernetes RBAC group the Role is bound to (not a system: group).",
    )
    aws_principals: tuple[Annotated[str, AfterValidator(_aws_principal)], ...] = Field(
        default=(),
        description="AWS: IAM role/user ARNs given an EKS access entry in `group` (no access "
        "policy: the Role is all they get).",
    )
    gcp_members: tuple[Annotated[str, AfterValidator(_gcp_member)], ...] = Field(
        default=(),
        description="GCP: IAM members given roles/container.clusterViewer on the project (to "
        "fetch credentials; no object rights) and bound to the Role by name (`group:` "
        "members need Google Groups for RBAC on the cluster).",
    )
    azure_groups: tuple[Annotated[str, AfterValidator(_entra_id)], ...] = Field(
        default=(),
        description="Azure: Entra group object ids bound to the Role (the cluster must "
        "authenticate with Entra ID for them to sign in).",
    )


class Database(BaseModel):
    model_config = _FROZEN

    size: str | None = Field(
        default=None, description="db.t4g.medium, db-custom-2-7680, B_Standard_B2s"
    )
    storage_gb: int = Field(default=20, ge=10, le=65536)


class InfraSpec(BaseModel):
    model_config = _FROZEN

    target: Target
    region: str
    name: str = Field(default="mlstack", pattern=_NAME)
    kubernetes_version: str = Field(default="1.33", pattern=r"^1\.\d{2}$")
    node_pools: tuple[NodePool, ...] = Field(min_length=1)
    services: Services = Services()
    database: Database = Database()
    api_access_cidrs: tuple[Cidr, ...] = Field(
        default=(),
        description="Networks that may reach the Kubernetes API; empty: private endpoint only "
        "(run `pulumi up` from inside the network, a VPN or a bastion).",
    )
    egress: Literal["nat", "none"] = Field(
        default="nat",
        description="How the private nodes reach registries and cloud APIs: `nat` (AWS: public "
        "subnets, an internet gateway and a NAT gateway; GCP: Cloud Router and Cloud NAT); "
        "`none` for an air-gapped network with its own mirror. Azure and on-prem: unused.",
    )
    deployers: Deployers = Field(
        default_factory=Deployers,
        description="Who may deploy endpoints to the serving namespace (docs/infra.md).",
    )
    serving_public: bool = Field(
        default=False, description="A public load balancer for the serving gateway (only this)."
    )
    image: PinnedImage = Field(
        default=images.MLSTACK,
        description="mlstack's image (`mlstack image build`): what the monitoring CronJobs, "
        "the exporter and KFP steps run. A tag other than `latest` or an `@sha256:` digest.",
    )
    mlflow_image: PinnedImage = Field(
        default=images.MLFLOW,
        description="MLflow's `-full` image: psycopg2 for the PostgreSQL backend store, boto3, "
        "google-cloud-storage, azure-storage-blob and azure-identity for the artifact stores "
        "(the plain image has none of them). Another image must have them too.",
    )
    redis_image: PinnedImage = Field(
        default=images.REDIS,
        description="Feast's online store. Another registry's copy (a mirror) must be the "
        "same image: the pod runs as its `redis` user, 999:1000.",
    )
    feast_image: PinnedImage = Field(
        default=images.FEAST,
        description="The Feast feature server. A mirror must hold the same image: the pod "
        "runs as its user, 1001:0.",
    )
    postgres_image: PinnedImage = Field(
        default=images.POSTGRES,
        description="psql in the databases Job (AWS and on-prem, as user 70, the alpine "
        "image's `postgres`), and on-prem the PostgreSQL server. A mirror must hold the same "
        "image.",
    )
    installer_image: PinnedImage = Field(
        default=images.INSTALLER,
        description="The Terraform path's installer Jobs' image (kubectl, helm and git: they "
        "apply the Gateway API CRDs and Kubeflow Pipelines' manifests, with cluster-admin). "
        "A tag other than `latest` or an `@sha256:` digest; name your registry's mirror, or "
        "pin the digest, to control what runs. The Pulumi path runs no installer Job.",
    )
    control_plane_cidrs: tuple[WebhookCidr, ...] = Field(
        default=(),
        description="On-prem only: where the API server calls the cluster's webhooks from, "
        "as the CNI sees it (the control-plane nodes' addresses, or their overlay tunnel "
        "addresses): admitted to Envoy Gateway's admission webhook (9443), nothing else. "
        "Elsewhere the program knows it (docs/infra.md).",
    )
    project: str | None = Field(default=None, description="GCP project")
    storage_account: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]{3,24}$",
        description="Azure: the storage account's name (unique across Azure, 3-24 lowercase "
        "letters and digits); default: the stack's name and a hash of its name and region.",
    )

    @model_validator(mode="after")
    def _target_rules(self) -> InfraSpec:
        pattern, example = REGION_FORMATS[self.target]
        if not re.match(pattern, self.region):
            raise ValueError(
                f"region: {self.region!r} is not a {self.target} region (like {example!r})"
            )
        if self.target == "gcp" and not self.project:
            raise ValueError("project: target gcp needs `project`")
        machines, machine = MACHINE_FORMATS[self.target]
        for index, pool in enumerate(self.node_pools):
            if not re.match(machines, pool.machine_type):
                raise ValueError(
                    f"node_pools[{index}].machine_type: {pool.machine_type!r} is not a "
                    f"{self.target} machine type (like {machine!r})"
                )
            gpu = pool.gpu_type
            if gpu and self.target == "gcp" and gpu not in GCP_GPUS:
                raise ValueError(
                    f"node_pools[{index}].gpu_type: {gpu!r} is not a GKE accelerator type "
                    f"(one of {', '.join(sorted(GCP_GPUS))})"
                )
            if gpu and self.target != "gcp" and not re.match(GPU_LABEL, gpu):
                raise ValueError(
                    f"node_pools[{index}].gpu_type: {gpu!r} is not a GPU type (a vendor and "
                    "a model, like 'nvidia-a10g')"
                )
        if self.target == "azure" and self.node_pools[0].has_gpu:
            raise ValueError(
                "node_pools[0]: on azure the first node pool is AKS's system pool: give it no GPU"
            )
        if self.target == "azure" and self.node_pools[0].min_size < 1:
            raise ValueError(
                "node_pools[0].min_size: on azure the first node pool is AKS's system pool, "
                "which cannot scale to zero: give it min_size 1 or more"
            )
        for field, target in DEPLOYER_FIELDS.items():
            if getattr(self.deployers, field) and self.target != target:
                own = [f"deployers.{f}" for f, t in DEPLOYER_FIELDS.items() if t == self.target]
                instead = own[0] if own else "deployers.group, bound to your own users"
                raise ValueError(
                    f"deployers.{field}: only for target {target}; this spec's target is "
                    f"{self.target} (use {instead})"
                )
        if self.control_plane_cidrs and self.target != "onprem":
            raise ValueError(
                f"control_plane_cidrs: only for target onprem; on {self.target} the program "
                "knows where the API server calls webhooks from (remove it)"
            )
        names = [p.name for p in self.node_pools]
        if len(set(names)) != len(names):
            raise ValueError(f"node_pools: names repeat: {names}")
        return self

    @property
    def gpu_pools(self) -> tuple[NodePool, ...]:
        return tuple(p for p in self.node_pools if p.has_gpu)

    def gpu_tolerations(self) -> list[dict[str, str]]:
        """What a pod tolerates to run on this cluster's GPU pools: the GPU taint, and on
        Azure the spot taint where a GPU pool is spot."""
        taints = {(t["key"], t["effect"]) for p in self.gpu_pools for t in p.taints_on(self.target)}
        wanted = [(GPU_TAINT["key"], GPU_TAINT["effect"])]
        if (AZURE_SPOT_TAINT["key"], AZURE_SPOT_TAINT["effect"]) in taints:
            wanted.append((AZURE_SPOT_TAINT["key"], AZURE_SPOT_TAINT["effect"]))
        return [{"key": key, "operator": "Exists", "effect": effect} for key, effect in wanted]


def parse_spec(data: object, *, where: str = "mlstack:spec") -> InfraSpec:
    """The spec, or a SpecError with a line per fault, `WHERE: FIELD: PROBLEM`
    (`my-stack.yaml: node_pools[1]: gpu_count is set but gpu_type is not`)."""
    try:
        return InfraSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            location = ""
            for part in error["loc"]:
                location += f"[{part}]" if isinstance(part, int) else f".{part}"
            message = str(error["msg"]).removeprefix("Value error, ")
            field = f"{location.removeprefix('.')}: " if location else ""
            lines.append(f"{where}: {field}{message}")
        raise SpecError("\n".join(lines)) from None
