"""Who may deploy endpoints, and what their pods need: the `mlstack-deployer` Role in the
serving namespace (exactly the requests `mlstack deploy --target kubernetes` sends), bound
to the `deployers.group` Kubernetes group, to the in-cluster ServiceAccount
`mlstack/mlstack-deployer` and to the cloud principals the spec lists (EKS access entries,
GKE IAM members, Entra groups); and the `prediction-log` Secret the endpoints' pods read
their PostgreSQL URL from, built from the stack's database by reference.

`manifests` is rendered with the services (both the Pulumi and the Terraform path apply it);
the cloud parts are resources of each path, declared by the functions below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from mlstack_infra.manifests import DATABASE_USER, NAMESPACE, SERVING
from mlstack_infra.spec import InfraSpec

if TYPE_CHECKING:  # the Terraform path imports the names above without Pulumi installed
    import pulumi

DEPLOYER = "mlstack-deployer"  # the Role, its RoleBinding and the ServiceAccount
#: The Secret the endpoints' pods read `MLSTACK_PREDICTION_LOG_URL` from (key `url`).
PREDICTION_LOG_SECRET = "prediction-log"
PREDICTION_LOG_KEY = "url"
PREDICTION_LOG_ENV = "MLSTACK_PREDICTION_LOG_URL"
#: The database (of DATABASES) that holds the spine and the prediction log.
PREDICTION_LOG_DATABASE = "mlstack"
#: GKE: enough IAM to fetch the cluster's credentials, no rights on its objects.
GKE_CLUSTER_VIEWER = "roles/container.clusterViewer"

#: What the cluster router sends (adapters/bentoml/stack_bentoml/cluster.py, kubelease.py),
#: as (API group, resource, verbs). Server-side apply is a PATCH that creates an absent
#: object, which the API server authorizes as `create` too. Discovery (`/apis/<group>/<v>`)
#: is every signed-in user's already (the `system:discovery` ClusterRole).
DEPLOYER_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("apps", "deployments", ("create", "delete", "list", "patch")),
    ("", "services", ("create", "delete", "patch")),
    ("", "pods", ("list",)),
    ("autoscaling", "horizontalpodautoscalers", ("create", "delete", "patch")),
    ("keda.sh", "scaledobjects", ("create", "delete", "patch")),
    ("policy", "poddisruptionbudgets", ("create", "delete", "patch")),
    ("networking.k8s.io", "networkpolicies", ("create", "delete", "patch")),
    ("gateway.networking.k8s.io", "httproutes", ("create", "delete", "get", "list", "patch")),
    # the Gateway the routes attach to: read, that it exists and its address (the URL)
    ("gateway.networking.k8s.io", "gateways", ("get",)),
    # each route's retries on a pod that died with requests in flight (Envoy Gateway's CRD)
    ("gateway.envoyproxy.io", "backendtrafficpolicies", ("create", "delete", "patch")),
    ("coordination.k8s.io", "leases", ("create", "delete", "get", "update")),
)

#: The Role in `mlstack` that lets deployers reach MLflow from outside the cluster
#: (`kubectl -n mlstack port-forward svc/mlflow 5000:5000`: kubectl reads the Service, lists
#: its pods and opens `pods/portforward` on one), bound to the same subjects: no other Service
#: readable, nothing writable.
MLFLOW_FORWARD = "mlstack-deployer-mlflow"
MLFLOW_SERVICE = "mlflow"
MLFLOW_FORWARD_RULES: tuple[dict[str, Any], ...] = (
    {
        "apiGroups": [""],
        "resources": ["services"],
        "resourceNames": [MLFLOW_SERVICE],
        "verbs": ["get"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]},
)


def _meta(name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/part-of": "mlstack"}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def subjects(spec: InfraSpec) -> list[dict[str, str]]:
    """The RoleBinding's subjects: the group, the in-cluster ServiceAccount, and on GKE each
    IAM member by the name GKE gives it (`user:`/`serviceAccount:` a User, `group:` a Group,
    which Google Groups for RBAC fills), on AKS each Entra group by object id."""
    rbac = "rbac.authorization.k8s.io"
    found = [
        {"kind": "Group", "apiGroup": rbac, "name": spec.deployers.group},
        {"kind": "ServiceAccount", "name": DEPLOYER, "namespace": NAMESPACE},
    ]
    for member in spec.deployers.gcp_members:
        kind, _, email = member.partition(":")
        found.append(
            {"kind": "Group" if kind == "group" else "User", "apiGroup": rbac, "name": email}
        )
    for group in spec.deployers.azure_groups:
        found.append({"kind": "Group", "apiGroup": rbac, "name": group})
    return found


def manifests(spec: InfraSpec) -> list[dict[str, Any]]:
    """The deployers' ServiceAccount (in `mlstack`), Role and RoleBinding (in the serving
    namespace), and the Role and RoleBinding that let them port-forward to MLflow (in
    `mlstack`): no rights anywhere else, none on Secrets, Roles or the namespaces."""
    rules = [
        {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
        for group, resource, verbs in DEPLOYER_RULES
    ]
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(DEPLOYER, NAMESPACE),
        "automountServiceAccountToken": False,
    }
    forward = [dict(rule) for rule in MLFLOW_FORWARD_RULES]
    return [
        account,
        *_bound(DEPLOYER, SERVING, rules, spec),
        *_bound(MLFLOW_FORWARD, NAMESPACE, forward, spec),
    ]


def _bound(
    name: str, namespace: str, rules: list[dict[str, Any]], spec: InfraSpec
) -> list[dict[str, Any]]:
    """A Role `name` in `namespace` with `rules`, and its RoleBinding to the deployers."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(name, namespace),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": subjects(spec),
        },
    ]


def prediction_log_url(host: str, password: str, port: int = 5432) -> str:
    """The URL the endpoints' pods write the prediction log to: the stack's database, as
    the stack file names it, with the password (quoted for a URL) in it."""
    secret = quote(password, safe="")
    return f"postgresql://{DATABASE_USER}:{secret}@{host}:{port}/{PREDICTION_LOG_DATABASE}"


def prediction_log_secret(
    name: str,
    database_host: pulumi.Input[str],
    database_password: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> Any:
    """The `prediction-log` Secret in the serving namespace (`opts`: its provider and what it
    waits for, the namespace); its value an Output of the generated password, kept secret."""
    import pulumi
    import pulumi_kubernetes as k8s

    url = pulumi.Output.all(database_host, database_password).apply(
        lambda v: prediction_log_url(str(v[0]), str(v[1]))
    )
    return k8s.core.v1.Secret(
        f"{name}-prediction-log",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=PREDICTION_LOG_SECRET, namespace=SERVING),
        string_data={PREDICTION_LOG_KEY: pulumi.Output.secret(cast(Any, url))},
        opts=opts,
    )


def eks_access_entries(
    name: str, spec: InfraSpec, cluster_name: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> list[Any]:
    """An EKS access entry per `deployers.aws_principals` ARN, in `deployers.group` and no
    access policy: the Role is all the principal may do on the cluster."""
    import pulumi_aws as aws

    return [
        aws.eks.AccessEntry(
            f"{name}-deployer-{index}",
            cluster_name=cluster_name,
            principal_arn=arn,
            kubernetes_groups=[spec.deployers.group],
            type="STANDARD",
            opts=opts,
        )
        for index, arn in enumerate(spec.deployers.aws_principals)
    ]


def gke_cluster_viewers(name: str, spec: InfraSpec, opts: pulumi.ResourceOptions) -> list[Any]:
    """roles/container.clusterViewer on the project for each `deployers.gcp_members` member:
    `gcloud container clusters get-credentials` works; what they may do inside is the Role's."""
    import pulumi_gcp as gcp

    return [
        gcp.projects.IAMMember(
            f"{name}-deployer-{index}",
            project=str(spec.project),
            role=GKE_CLUSTER_VIEWER,
            member=member,
            opts=opts,
        )
        for index, member in enumerate(spec.deployers.gcp_members)
    ]
