"""The infrastructure program under Pulumi's own mocks (`pulumi.runtime.set_mocks`): no CLI,
no cloud; every resource the program declares is recorded with its inputs."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "pulumi"))

pulumi = pytest.importorskip(
    "pulumi", reason="the infra group is not installed (make test installs it)"
)

from mlstack_infra.policies import Declared  # noqa: E402


class RecordingMocks(pulumi.runtime.Mocks):  # type: ignore[misc]
    """Records each resource; answers with its inputs plus what the program reads back.
    `dependencies`: by resource name, the names of the resources it waits for (its
    `depends_on` and the resources its inputs come from), as the engine is told."""

    def __init__(self) -> None:
        self.resources: list[Declared] = []
        self.dependencies: dict[str, set[str]] = {}

    def waits_for(self, name: str) -> set[str]:
        """Every resource `name` waits for, directly or through those it waits for."""
        found: set[str] = set()
        todo = list(self.dependencies.get(name, ()))
        while todo:
            other = todo.pop()
            if other not in found:
                found.add(other)
                todo += self.dependencies.get(other, ())
        return found

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        self.resources.append(Declared(args.typ, args.name, dict(args.inputs)))
        outputs = dict(args.inputs)
        outputs.setdefault("name", args.name)
        if args.typ.startswith("aws:"):
            outputs.setdefault(
                "arn", f"arn:aws:{args.typ.split(':')[1].split('/')[0]}::123456789012:{args.name}"
            )
        if args.typ == "aws:eks/cluster:Cluster":
            outputs.update(
                endpoint="https://eks.example",
                certificateAuthority={"data": "Q0E="},
                identities=[
                    {"oidcs": [{"issuer": "https://oidc.eks.us-east-1.amazonaws.com/id/X"}]}
                ],
                # the group EKS creates and attaches to managed node groups' nodes
                vpcConfig={**args.inputs["vpcConfig"], "clusterSecurityGroupId": "sg-eks-cluster"},
            )
        if args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs.update(latestVersion=1)
        if args.typ == "aws:s3/bucket:Bucket":
            outputs.update(bucket=f"{args.name}-bucket", arn=f"arn:aws:s3:::{args.name}")
        if args.typ == "aws:rds/instance:Instance":
            outputs.update(address=f"{args.name}.rds.example")
        if args.typ == "gcp:container/cluster:Cluster":
            outputs.update(endpoint="10.0.0.2", masterAuth={"clusterCaCertificate": "Q0E="})
        if args.typ == "gcp:sql/databaseInstance:DatabaseInstance":
            outputs.update(privateIpAddress="10.80.0.3")
        if args.typ == "gcp:serviceaccount/account:Account":
            outputs.update(email=f"{args.name}@project.iam.gserviceaccount.com")
        if args.typ == "azure-native:containerservice:ManagedCluster":
            outputs.update(oidcIssuerProfile={"issuerURL": "https://oidc.azure.example/x"})
        if args.typ == "azure-native:dbforpostgresql:Server":
            outputs.update(fullyQualifiedDomainName=f"{args.name}.postgres.database.azure.com")
        if args.typ == "azure-native:managedidentity:UserAssignedIdentity":
            outputs.update(clientId="client-1", principalId="principal-1")
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs.update(result="generated-password")
        return f"{args.name}-id", outputs

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]]] | dict[str, Any]:
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            config = base64.b64encode(b"apiVersion: v1\nkind: Config\n").decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": config}]}
        return {}


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):  # type: ignore[misc]
    """Pulumi's mock monitor, noting what each registered resource depends on (the mocks
    are not told)."""

    def RegisterResource(self, request: Any) -> Any:
        self.mocks.dependencies[request.name] = {
            str(urn).rsplit("::", 1)[-1] for urn in request.dependencies
        }
        return super().RegisterResource(request)


@pytest.fixture
def mocks() -> Iterator[RecordingMocks]:
    # Pulumi's runtime wants a current event loop; an earlier test's asyncio.run() may have
    # left the main thread without one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(
        recording,
        project="mlstack-infra",
        stack="test",
        preview=False,
        monitor=RecordingMonitor(recording),
    )
    yield recording
    asyncio.set_event_loop(None)
    loop.close()


def run_program(program: Callable[[], Any]) -> None:
    """Run `program` to completion under the mocks (every output resolved)."""

    @pulumi.runtime.test  # type: ignore[misc]
    def wrapped() -> Any:
        return program()

    wrapped()


# The Terraform path (infra/terraform): synthesized once per source state, shared by every
# test and every pytest-xdist worker (a file lock; the output is kept under a key of the
# sources, so a second session with nothing changed synthesizes nothing).
TERRAFORM = ROOT / "infra" / "terraform"
TERRAFORM_PYTHON = TERRAFORM / ".venv" / "bin" / "python"
TARGETS = ("aws", "gcp", "azure", "onprem")


def _sources_key() -> str:
    import hashlib

    paths = [
        *sorted((ROOT / "infra" / "pulumi").glob("Pulumi.*.yaml")),
        *sorted((ROOT / "infra" / "pulumi" / "mlstack_infra").glob("*.py")),
        *sorted((TERRAFORM / "mlstack_tf").glob("*.py")),
        *sorted((ROOT / "stack" / "observability" / "dashboards").glob("*.json")),
        *sorted(p for p in (TERRAFORM / "charts").rglob("*") if p.is_file()),
        TERRAFORM / "uv.lock",
    ]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def terraform_environment() -> dict[str, str]:
    import os

    return {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}


@pytest.fixture(scope="session")
def terraform_out() -> Path:
    """`infra/terraform/out/.tests/<key>/<target>/cdk.tf.json` for the four example stacks."""
    import fcntl
    import shutil
    import subprocess

    if shutil.which("node") is None:
        pytest.skip("node is not installed: CDK Terrain runs its provider bindings in node")
    if not TERRAFORM_PYTHON.exists():
        pytest.skip(
            "the Terraform path's environment (infra/terraform/.venv) is missing: "
            "make sync-test or make infra-synth creates it"
        )
    cache = TERRAFORM / "out" / ".tests"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / _sources_key()
    with (cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker synthesizes, the others wait for it
        if not (out / "done").exists():
            for old in cache.iterdir():
                if old.is_dir():
                    shutil.rmtree(old)
            done = subprocess.run(
                [str(TERRAFORM_PYTHON), "-m", "mlstack_tf.app", "--out", str(out)],
                cwd=TERRAFORM,
                env=terraform_environment(),
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            (out / "done").write_text(done.stdout)
    return out
