"""The mlstack services on the cluster: the manifests of `manifests.render` (and, on-prem,
the in-cluster stores), the database secret, the stack file the monitoring jobs read,
Kubeflow Pipelines from its released manifests, and the serving gateway (gateway.py: the
Gateway API's CRDs, then Envoy Gateway, then the Gateway, each after the one before)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlstack_infra import gateway, observability
from mlstack_infra.common import ClusterOutputs, child
from mlstack_infra.manifests import NAMESPACE, SECRET, Endpoints, render
from mlstack_infra.spec import InfraSpec
from mlstack_infra.stack_output import render_stack
from mlstack_infra.stores import MINIO_SECRET

KFP_MANIFESTS = (
    "https://github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=2.5.0"
)


class MlstackServices(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        spec: InfraSpec,
        cluster: ClusterOutputs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        minio_key: pulumi.Output[str] | None = None,
    ) -> None:
        super().__init__("mlstack:infra:MlstackServices", name, None, opts)
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=cluster.kubeconfig, opts=child(self))
        on_cluster = child(self, provider=self.provider)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "baseline"}
            ),
            opts=on_cluster,
        )
        in_namespace = child(self, provider=self.provider, depends_on=[namespace])
        secrets = [
            k8s.core.v1.Secret(
                f"{name}-database",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=SECRET, namespace=NAMESPACE),
                string_data={
                    "username": cluster.database_user,
                    "password": cluster.database_password,
                },
                opts=in_namespace,
            ),
            k8s.core.v1.Secret(
                f"{name}-stack",
                metadata=k8s.meta.v1.ObjectMetaArgs(name="mlstack-stack", namespace=NAMESPACE),
                string_data={"stack.yaml": self.stack_yaml(spec, cluster)},
                opts=in_namespace,
            ),
        ]
        if minio_key is not None:
            secrets.append(
                k8s.core.v1.Secret(
                    f"{name}-minio",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=MINIO_SECRET, namespace=NAMESPACE),
                    string_data={"access_key": "mlstack", "secret_key": minio_key},
                    opts=in_namespace,
                )
            )
        objects = pulumi.Output.all(
            cluster.artifact_root,
            cluster.database_host,
            cluster.identity_annotations,
            pulumi.Output.from_input(cluster.in_cluster_manifests),
        ).apply(lambda values: self._objects(spec, cluster, *values))
        self.services = k8s.yaml.v2.ConfigGroup(
            f"{name}-services",
            objs=objects,
            opts=child(self, provider=self.provider, depends_on=secrets),
        )
        if spec.services.serving:
            self._gateway(name, spec, on_cluster)
        if spec.services.kubeflow_pipelines:
            k8s.kustomize.v2.Directory(
                f"{name}-kubeflow-pipelines", directory=KFP_MANIFESTS, opts=on_cluster
            )
        self.register_outputs({})

    def _gateway(self, name: str, spec: InfraSpec, on_cluster: pulumi.ResourceOptions) -> None:
        """The CRDs (the chart rendered here and applied server-side, as Envoy Gateway's
        documentation does), Envoy Gateway's release once they exist, then the Gateway once
        its controller and the serving namespace (the services) do."""
        self.gateway_crds = k8s.helm.v4.Chart(
            f"{name}-{gateway.CRDS_RELEASE}",
            chart=gateway.CRDS_CHART,
            version=gateway.ENVOY_GATEWAY_VERSION,
            values=gateway.CRD_VALUES,
            opts=on_cluster,
        )
        self.envoy_gateway = k8s.helm.v3.Release(
            f"{name}-{gateway.RELEASE}",
            name=gateway.RELEASE,
            chart=gateway.CHART,
            version=gateway.ENVOY_GATEWAY_VERSION,
            namespace=gateway.PROXY_NAMESPACE,
            create_namespace=True,
            skip_crds=True,
            values=gateway.VALUES,
            opts=child(self, provider=self.provider, depends_on=[self.gateway_crds]),
        )
        self.gateway = k8s.yaml.v2.ConfigGroup(
            f"{name}-gateway",
            objs=gateway.objects(spec),
            opts=child(
                self, provider=self.provider, depends_on=[self.envoy_gateway, self.services]
            ),
        )

    @staticmethod
    def stack_yaml(spec: InfraSpec, cluster: ClusterOutputs) -> pulumi.Output[str]:
        return pulumi.Output.all(cluster.database_host, cluster.artifact_root).apply(
            lambda v: render_stack(spec, database_host=v[0], artifact_root=v[1])
        )

    @staticmethod
    def _objects(
        spec: InfraSpec,
        cluster: ClusterOutputs,
        artifact_root: str,
        host: str,
        annotations: dict[str, str],
        extra: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        endpoints = Endpoints(
            artifact_root=artifact_root,
            database_host=host,
            service_account_annotations=dict(annotations),
            artifact_env=cluster.artifact_env,
            device_plugin=cluster.device_plugin,
            artifact_secret=cluster.artifact_secret,
        )
        rendered = [
            m
            for m in render(spec, endpoints)
            if m["kind"] != "Namespace" or m["metadata"]["name"] != NAMESPACE
        ]
        # the PodMonitor needs the Prometheus Operator's CRDs (kube-prometheus-stack)
        return rendered + list(extra) + observability.manifests(spec)
