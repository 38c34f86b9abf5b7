"""The services' pods as a cluster admits and schedules them: each pod that refuses root
names the user its image runs as (runAsNonRoot alone is refused for an image whose user is
root or a name), and MLflow's image has the drivers its stores need."""

from __future__ import annotations

from typing import Any

import pytest
from mlstack_infra.manifests import Endpoints, render
from mlstack_infra.policies import Declared, violations
from mlstack_infra.posture import pod_template
from mlstack_infra.spec import InfraSpec, parse_spec

from tests.infra.test_targets import spec_for


def rendered(spec: InfraSpec) -> dict[str, dict[str, Any]]:
    objects = render(spec, Endpoints("s3://b/mlflow", "db.internal"))
    return {f"{o['kind']} {o['metadata']['name']}": o for o in objects}


def pod(objects: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    template = pod_template(objects[key])
    assert template is not None
    return dict(template["spec"])


@pytest.mark.parametrize("target", ["aws", "gcp", "azure"])
def test_every_pod_that_refuses_root_names_the_user_it_runs_as(target: str) -> None:
    objects = rendered(spec_for(target))
    checked = 0
    for key, obj in objects.items():
        template = pod_template(obj)
        if template is None:
            continue
        context = template["spec"].get("securityContext") or {}
        for container in template["spec"]["containers"]:
            own = container.get("securityContext") or {}
            if own.get("runAsNonRoot", context.get("runAsNonRoot")):
                assert own.get("runAsUser", context.get("runAsUser")), (key, container["name"])
                checked += 1
    assert checked >= 4  # mlflow, redis, the feature server, a monitor job (and the databases job)


def test_redis_and_the_feature_server_run_as_their_images_users() -> None:
    objects = rendered(spec_for("aws"))
    redis = pod(objects, "Deployment redis")
    assert redis["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 999,
        "runAsGroup": 1000,
        "fsGroup": 1000,
    }
    assert "serviceAccountName" not in redis  # it needs no cloud identity
    feast = pod(objects, "Deployment feature-server")
    assert feast["securityContext"]["runAsUser"] == 1001


def test_images_without_a_user_of_their_own_run_as_a_non_root_one_with_a_home() -> None:
    objects = rendered(spec_for("aws"))
    for key in ("Deployment mlflow", "CronJob monitor-churn"):
        spec = pod(objects, key)
        assert spec["securityContext"]["runAsUser"] == 1000, key
        [container] = spec["containers"]
        assert {"name": "HOME", "value": "/tmp"} in container["env"], key


def test_the_rule_finds_run_as_non_root_with_no_user() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "redis", "namespace": "mlstack"},
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [{"name": "redis", "image": "redis:7.4-alpine"}],
                }
            }
        },
    }
    found = violations([Declared("kubernetes:yaml/v2:ConfigGroup", "s", {"objs": [deployment]})])
    assert found == {
        "non_root_pods_name_their_user": [
            "Deployment mlstack/redis: container redis is runAsNonRoot with no runAsUser"
        ]
    }


def test_mlflow_runs_from_the_image_with_its_database_and_blob_drivers() -> None:
    spec = parse_spec(
        {
            "target": "azure",
            "region": "westeurope",
            "node_pools": [{"name": "system", "machine_type": "Standard_D8s_v5"}],
        }
    )
    # the `-full` image installs mlflow[extras,azure,db]: psycopg2 for the PostgreSQL backend
    # store, azure-storage-blob and azure-identity for wasbs:// (the plain image has neither)
    assert spec.mlflow_image == "ghcr.io/mlflow/mlflow:v3.17.2-full"
    [container] = pod(rendered(spec), "Deployment mlflow")["containers"]
    assert container["image"] == spec.mlflow_image
