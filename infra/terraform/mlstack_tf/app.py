"""Synthesize Terraform JSON for each example spec (the Pulumi program's `Pulumi.*.yaml`, or
files given): `python -m mlstack_tf.app --out out [SPEC.yaml ...]` writes
`out/<target>/cdk.tf.json`, the chart it installs and `stages.json` (the two stages of a
first apply against a private API endpoint). A bad spec stops here, before any
synthesis, with the field named, as on the Pulumi path. Each folder records the spec it was
synthesized from (`.mlstack-spec`): a folder made from another spec, whose state may be real
infrastructure, is refused rather than overwritten."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlstack_infra.spec import InfraSpec, SpecError, parse_spec

from mlstack_tf import PULUMI_PROGRAM

EXAMPLES = sorted(PULUMI_PROGRAM.glob("Pulumi.*.yaml"))
#: In each synthesized folder: the absolute path of the spec file it was synthesized from.
SOURCE = ".mlstack-spec"
#: In each synthesized folder: the two stages of a first apply (docs/infra.md).
STAGES = "stages.json"
#: Resource types of the services stage: those that talk to the Kubernetes API.
IN_CLUSTER = ("kubernetes_", "helm_")


def stages(config: dict[str, Any]) -> dict[str, list[str]]:
    """The addresses of a synthesized configuration's two stages: `cluster`, every resource
    that needs no Kubernetes API (the cloud's, the generated passwords), applied first with
    `terraform apply -target=ADDRESS ...`; then `services`, the kubernetes and helm
    resources, which a plain `terraform apply` adds from where the API is reached."""
    found: dict[str, list[str]] = {"cluster": [], "services": []}
    for kind, named in sorted((config.get("resource") or {}).items()):
        stage = "services" if kind.startswith(IN_CLUSTER) else "cluster"
        found[stage] += [f"{kind}.{name}" for name in sorted(named)]
    return found


def check_folder(path: Path, folder: Path) -> None:
    """Refuse (SpecError) to synthesize `path` into `folder` if another spec made it: its
    `terraform.tfstate` would then plan the other spec's infrastructure away."""
    try:
        recorded = (folder / SOURCE).read_text().strip()
    except FileNotFoundError:
        return
    if recorded != str(path.resolve()):
        raise SpecError(
            f"{path}: {folder} was synthesized from {recorded}, not from this spec; its state "
            "may be that spec's infrastructure: give this spec another --out folder "
            "(or delete the folder if nothing was applied from it)"
        )


def read_spec(path: Path) -> InfraSpec:
    """The spec of a Pulumi stack file (`config: mlstack:spec:`) or of a plain spec file."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read it: {exc}") from None
    if isinstance(document, dict) and "config" in document:
        return parse_spec(
            (document["config"] or {}).get("mlstack:spec"), where=f"{path.name}: mlstack:spec"
        )
    return parse_spec(document, where=path.name)


def synth(spec: InfraSpec, folder: Path, source: Path | None = None) -> Path:
    """Write `folder/cdk.tf.json` (and `folder/charts/`) for `spec`, and record `source`, the
    spec's file, in `folder/.mlstack-spec`; returns the JSON's path."""
    from cdktn import App, LocalBackend, TerraformStack
    from cdktn_provider_random.provider import RandomProvider

    from mlstack_tf import services

    with tempfile.TemporaryDirectory() as scratch:
        app = App(outdir=scratch, skip_validation=False)
        stack = TerraformStack(app, spec.name)
        RandomProvider(stack, "random")  # the generated passwords
        # State next to the configuration until a backend_override.tf.json names a remote one
        # (docs/infra.md: S3, GCS, azurerm).
        LocalBackend(stack, path="terraform.tfstate")
        if spec.target == "aws":
            from mlstack_tf.aws import build as cloud
        elif spec.target == "gcp":
            from mlstack_tf.gcp import build as cloud
        elif spec.target == "azure":
            from mlstack_tf.azure import build as cloud
        else:
            from mlstack_tf.onprem import build as cloud
        services.build(stack, spec, cloud(stack, spec))
        app.synth()
        # Only what the app writes is replaced: a user's state, .terraform/, lock file and
        # backend_override.tf.json stay in the folder across synths.
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(
            Path(scratch) / "stacks" / spec.name / "cdk.tf.json", folder / "cdk.tf.json"
        )
        config = json.loads((folder / "cdk.tf.json").read_text())
        (folder / STAGES).write_text(json.dumps(stages(config), indent=2) + "\n")
        if source is not None:
            (folder / SOURCE).write_text(f"{source.resolve()}\n")
    chart = folder / "charts" / "manifests"
    if chart.exists():
        shutil.rmtree(chart)
    shutil.copytree(services.CHART, chart)
    return folder / "cdk.tf.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlstack_tf.app", description=__doc__)
    parser.add_argument("specs", nargs="*", type=Path, help="default: the example stacks")
    parser.add_argument(
        "--out",
        type=Path,
        help="writes OUT/<target>/; default: out/<target>/, out/examples/<target>/ for the "
        "example stacks",
    )
    args = parser.parse_args(argv)
    paths: list[Path] = args.specs or EXAMPLES
    out: Path = args.out or Path(__file__).resolve().parents[1] / (
        "out" if args.specs else "out/examples"
    )
    try:
        specs = [read_spec(path) for path in paths]  # every spec checked before any synthesis
        seen: dict[str, Path] = {}
        for path, spec in zip(paths, specs, strict=True):
            if spec.target in seen:
                raise SpecError(
                    f"{path}: {seen[spec.target]} is a {spec.target} spec too and both would "
                    f"be written to {out / spec.target}: synthesize them with different --out"
                )
            seen[spec.target] = path
            check_folder(path, out / spec.target)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, spec in zip(paths, specs, strict=True):
        written = synth(spec, out / spec.target, path)
        print(f"{spec.target}: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
