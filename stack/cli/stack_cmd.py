"""`mlstack stack validate|show`."""

from __future__ import annotations

from pathlib import Path

import click

from stack.cli.common import stack_path


@click.group("stack")
def stack_group() -> None:
    """Validate or show a stack file."""


@stack_group.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--recipe",
    "recipe_location",
    type=click.Path(exists=True),
    help="Also check that the stack can do what this recipe asks.",
)
@click.pass_context
def validate(ctx: click.Context, file: str | None, recipe_location: str | None) -> None:
    """Check FILE: its shape and types, that its adapters are installed, their options, that
    the spine's database answers, and (with --recipe) the capabilities the recipe needs, its
    step functions, hooks and retraining recipe: the checks `mlstack run` makes before it
    starts. Exits 1 listing every problem; changes nothing."""
    from stack.preflight import preflight

    path = stack_path(ctx, file)
    checked = preflight(path, Path(recipe_location) if recipe_location else None)
    where = path or "the embedded local stack"
    click.echo(f"{where}: stack {checked.stack.name!r} is valid")
    for role, resolved in checked.roles.items():
        caps = ", ".join(sorted(resolved.capabilities)) or "-"
        origin = "  (from the embedded local stack)" if role in checked.embedded else ""
        click.echo(f"  {role.value:<13} {resolved.adapter:<10} [{caps}]{origin}")
    if checked.embedded:
        click.echo("  write `ROLE: none` in the stack file for a stack without that role")
    if checked.recipe is not None:
        click.echo(
            f"  recipe {checked.recipe.name!r}: every capability it needs is present; "
            "its steps, hooks and retraining recipe load"
        )


@stack_group.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def show(ctx: click.Context, file: str | None) -> None:
    """Print the stack as mlstack reads it: ${ENV} expanded, adapter options validated by
    their adapters, and every secret masked."""
    import json

    from pydantic import BaseModel

    from stack.config.stack_file import read_stack_file
    from stack.plugins.registry import default_registry
    from stack.resolution import resolve_stack

    stack, doc = read_stack_file(stack_path(ctx, file))
    roles = resolve_stack(stack, doc, default_registry())
    data: dict[str, object] = {"name": stack.name, "home": stack.home}
    for role, resolved in roles.items():
        options = (
            resolved.config.model_dump(mode="json")  # SecretStr dumps as '**********'
            if isinstance(resolved.config, BaseModel)
            else {}
        )
        data[role.value] = {"adapter": resolved.adapter, **options}
    data["spine"] = {"url": stack.spine.safe_url}
    data["identity"] = stack.identity.model_dump(mode="json")
    click.echo(json.dumps(data, indent=2))


@stack_group.command("from-pulumi")
@click.option("--cwd", default="infra/pulumi", show_default=True, help="The Pulumi program.")
@click.option("--stack", "pulumi_stack", help="The Pulumi stack (default: the selected one).")
@click.option("--output", "-o", default="stack.yaml", show_default=True)
def from_pulumi(cwd: str, pulumi_stack: str | None, output: str) -> None:
    """Write the stack file `pulumi up` exported (its `mlstack` output), then validate it."""
    import shutil
    import subprocess

    from stack.errors import StackError

    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise StackError(
            "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/); or run: "
            "pulumi stack output mlstack --show-secrets > stack.yaml"
        )
    command = [pulumi, "stack", "output", "mlstack", "--show-secrets"]
    if pulumi_stack:
        command += ["--stack", pulumi_stack]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(f"pulumi stack output failed in {cwd}:\n{done.stderr.strip()}")
    _write_exported_stack(done.stdout, Path(output))


@stack_group.command("from-terraform")
@click.argument("outputs", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--output", "-o", default="stack.yaml", show_default=True)
def from_terraform(outputs: str, output: str) -> None:
    """Write the stack file the Terraform path exported, from OUTPUTS (what `terraform output
    -json` prints, `-` for standard input; its `mlstack` output, the same as Pulumi's), then
    validate it."""
    import json
    import sys

    from stack.errors import StackError

    where = "standard input" if outputs == "-" else outputs
    try:
        text = sys.stdin.read() if outputs == "-" else Path(outputs).read_text()
        document = json.loads(text)
    except OSError as exc:
        raise StackError(f"cannot read {where}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise StackError(
            f"{where} is not JSON (`terraform output -json` prints it): {exc}"
        ) from None
    exported = document.get("mlstack") if isinstance(document, dict) else None
    value = exported.get("value") if isinstance(exported, dict) else None
    if not isinstance(value, str):
        raise StackError(
            f"{where} has no `mlstack` output with a text value: run `terraform output -json` "
            "in the folder the configuration was applied from (infra/terraform/out/<target>)"
        )
    _write_exported_stack(value, Path(output))


def _write_exported_stack(text: str, target: Path) -> None:
    """Write `text` (the exported stack file) to `target` once mlstack reads it and every
    adapter accepts its options; nothing is written when it does not."""
    import os

    from stack.config.stack_file import read_stack_file
    from stack.errors import StackError
    from stack.plugins.registry import default_registry
    from stack.resolution import resolve_stack

    partial = target.with_suffix(".partial")
    partial.write_text(text)
    placeholder = "MLSTACK_DB_PASSWORD" not in os.environ  # a reference, checked for shape
    if placeholder:
        os.environ["MLSTACK_DB_PASSWORD"] = "unset"
    try:
        stack, doc = read_stack_file(partial)
        resolve_stack(stack, doc, default_registry(), None)  # every adapter's options too
    except StackError:
        partial.unlink()
        raise
    finally:
        if placeholder:
            del os.environ["MLSTACK_DB_PASSWORD"]
    partial.replace(target)
    click.echo(f"wrote {target} (set MLSTACK_DB_PASSWORD before using it)")
