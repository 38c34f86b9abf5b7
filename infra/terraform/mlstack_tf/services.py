"""The mlstack services on the cluster, through the kubernetes and helm providers: the
`mlstack` namespace, the database and stack-file Secrets, the objects `manifests.render`
renders (the same the Pulumi program applies, with the cloud layer's objects) as one Helm
release of a chart that applies what it is given, Kubeflow Pipelines, and the serving
gateway (mlstack_infra.gateway: the Gateway API's CRDs applied by a Job, then Envoy Gateway's
chart, then the Gateway, each release waiting for the one before). Then the outputs, under
the Pulumi program's names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cdktn import TerraformOutput, TerraformStack
from cdktn_provider_helm.provider import HelmProvider
from cdktn_provider_helm.release import Release
from cdktn_provider_kubernetes.namespace_v1 import NamespaceV1
from cdktn_provider_kubernetes.provider import KubernetesProvider
from cdktn_provider_kubernetes.secret_v1 import SecretV1
from mlstack_infra import gateway, observability
from mlstack_infra.manifests import DATABASE_USER, NAMESPACE, SECRET, Endpoints, render
from mlstack_infra.spec import InfraSpec
from mlstack_infra.stack_output import render_stack

from mlstack_tf import access
from mlstack_tf.cluster import ClusterParts, blocks
from mlstack_tf.kfp import installer, installer_job

#: The chart every release uses (copied next to the synthesized JSON): it applies the objects
#: in its values, nothing else.
CHART = Path(__file__).resolve().parents[1] / "charts" / "manifests"
CHART_PATH = "${path.module}/charts/manifests"


def literal(value: Any) -> Any:
    """`value` with every `${` that is not a CDK token escaped, so Terraform passes it on as
    text: `${MLSTACK_DB_PASSWORD}` is for mlstack, `${datasource}` for Grafana."""
    if isinstance(value, str):
        return re.sub(r"\$\{(?!TfToken\[)", "$${", value)
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value


def objects(spec: InfraSpec, parts: ClusterParts) -> list[dict[str, Any]]:
    """What the Pulumi program applies in its ConfigGroup: the rendered services (but the
    namespace, created first) and the cloud layer's own objects."""
    endpoints = Endpoints(
        artifact_root=parts.artifact_root,
        database_host=parts.database_host,
        service_account_annotations=dict(parts.identity_annotations),
        artifact_env=parts.artifact_env,
        device_plugin=parts.device_plugin,
        artifact_secret=parts.artifact_secret,
    )
    rendered = [
        m
        for m in render(spec, endpoints)
        if m["kind"] != "Namespace" or m["metadata"]["name"] != NAMESPACE
    ]
    # the PodMonitor needs the Prometheus Operator's CRDs (kube-prometheus-stack)
    objects = rendered + list(parts.in_cluster_manifests) + observability.manifests(spec)
    return [literal(o) for o in objects]


def build(stack: TerraformStack, spec: InfraSpec, parts: ClusterParts) -> None:
    name = spec.name
    connection = dict(parts.kubernetes)
    kubernetes = dict(connection)
    if "exec" in kubernetes:  # a block list for this provider, one block for helm's
        kubernetes["exec"] = blocks([kubernetes["exec"]])
    KubernetesProvider(stack, "kubernetes", **kubernetes)
    HelmProvider(stack, "helm", kubernetes=connection)
    namespace = NamespaceV1(
        stack,
        f"{name}-namespace",
        metadata=[
            {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}
        ],
        depends_on=parts.depends_on or None,
    )
    stack_yaml = literal_stack(spec, parts)
    secrets = [
        SecretV1(
            stack,
            f"{name}-database-secret",
            metadata={"name": SECRET, "namespace": NAMESPACE},
            data={"username": DATABASE_USER, "password": parts.database_password},
            depends_on=[namespace],
        ),
        SecretV1(
            stack,
            f"{name}-stack",
            metadata={"name": "mlstack-stack", "namespace": NAMESPACE},
            data={"stack.yaml": stack_yaml},
            depends_on=[namespace],
        ),
    ]
    if parts.minio_key is not None:
        from mlstack_infra.stores import MINIO_SECRET

        secrets.append(
            SecretV1(
                stack,
                f"{name}-minio",
                metadata={"name": MINIO_SECRET, "namespace": NAMESPACE},
                data={"access_key": "mlstack", "secret_key": parts.minio_key},
                depends_on=[namespace],
            )
        )
    services = Release(
        stack,
        f"{name}-services-release",
        name="mlstack-services",
        namespace=NAMESPACE,
        chart=CHART_PATH,
        values=[json.dumps({"objects": objects(spec, parts)})],
        depends_on=secrets,
    )
    if spec.services.serving:  # in the serving namespace, which the release creates
        access.prediction_log_secret(
            stack,
            spec,
            database_host=parts.database_host,
            database_password=parts.database_password,
            depends_on=[services],
        )
    if spec.services.serving:
        serving_gateway(stack, spec, namespace, services)
    if spec.services.kubeflow_pipelines:
        Release(
            stack,
            f"{name}-kubeflow-pipelines",
            name="kubeflow-pipelines",
            namespace=NAMESPACE,
            chart=CHART_PATH,
            values=[json.dumps({"objects": literal(installer(spec))})],
            depends_on=[namespace],
            wait_for_jobs=True,
        )
    TerraformOutput(stack, "mlstack", value=stack_yaml, sensitive=True)
    TerraformOutput(stack, "kubeconfig", value=parts.kubeconfig, sensitive=True)
    TerraformOutput(stack, "database_password", value=parts.database_password, sensitive=True)
    TerraformOutput(stack, "artifact_root", value=parts.artifact_root)


def serving_gateway(
    stack: TerraformStack, spec: InfraSpec, namespace: NamespaceV1, services: Release
) -> None:
    """The CRDs (a Job running Envoy Gateway's own install command: the CRD chart is too
    large for a Helm release), then Envoy Gateway's release, then the Gateway's objects
    once its controller and the serving namespace (the services' release) exist."""
    crds = Release(
        stack,
        f"{spec.name}-{gateway.CRDS_RELEASE}",
        name=gateway.CRDS_RELEASE,
        namespace=NAMESPACE,
        chart=CHART_PATH,
        values=[
            json.dumps(
                {
                    "objects": literal(
                        installer_job(spec, gateway.CRDS_RELEASE, gateway.crds_script())
                    )
                }
            )
        ],
        depends_on=[namespace],
        wait_for_jobs=True,
    )
    controller = Release(
        stack,
        f"{spec.name}-{gateway.RELEASE}",
        name=gateway.RELEASE,
        namespace=gateway.PROXY_NAMESPACE,
        create_namespace=True,
        chart=gateway.CHART,
        version=gateway.ENVOY_GATEWAY_VERSION,
        skip_crds=True,
        values=[json.dumps(gateway.VALUES)],
        depends_on=[crds],
    )
    Release(
        stack,
        f"{spec.name}-gateway",
        name="mlstack-gateway",
        namespace=NAMESPACE,
        chart=CHART_PATH,
        values=[json.dumps({"objects": literal(gateway.objects(spec))})],
        depends_on=[controller, services],
    )


def literal_stack(spec: InfraSpec, parts: ClusterParts) -> str:
    text = render_stack(
        spec,
        database_host=parts.database_host,
        artifact_root=parts.artifact_root,
        tool="terraform",
    )
    return str(literal(text))
