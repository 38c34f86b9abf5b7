"""`mlstack stack validate|show`."""

from __future__ import annotations

import re
from pathlib import Path

import click

from stack.atomic import write_atomic
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


#: Both exports' way to replace an existing, different output file (_write_exported_stack).
_FORCE = click.option(
    "--force",
    is_flag=True,
    help="Replace an existing, different file at --output (kept as <file>.bak).",
)


@stack_group.command("from-pulumi")
@click.option("--cwd", default="infra/pulumi", show_default=True, help="The Pulumi program.")
@click.option("--stack", "pulumi_stack", help="The Pulumi stack (default: the selected one).")
@click.option("--output", "-o", default="stack.yaml", show_default=True)
@_FORCE
def from_pulumi(cwd: str, pulumi_stack: str | None, output: str, force: bool) -> None:
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
    _write_exported_stack(done.stdout, Path(output), "the `mlstack` output of pulumi", force)


@stack_group.command("from-terraform")
@click.argument("outputs", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--output", "-o", default="stack.yaml", show_default=True)
@_FORCE
def from_terraform(outputs: str, output: str, force: bool) -> None:
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
    _write_exported_stack(value, Path(output), f"the `mlstack` output in {where}", force)


#: Fields whose value is a secret: in an exported stack file, only a `${VAR}` reference.
_SECRET_FIELD = re.compile(r"(password|passwd|secret|token|secret_key|access_key)$", re.I)
_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
#: A pod's variable read from a Kubernetes Secret: its name and key, never its value.
_SECRET_REF = {"env", "secret", "key"}
#: `scheme://user:PASSWORD@host`: a password written into a URL.
_URL_PASSWORD = re.compile(r"://[^/@:\s]*:([^@/\s]+)@")


def literal_secrets(data: object, at: str = "") -> list[str]:
    """The fields of an exported stack document (parsed YAML) that hold a secret's value
    rather than a `${VAR}` reference: a `password`/`secret`/`token` field, or a URL with a
    password in it; each as its dotted path (`spine.password`)."""
    found: list[str] = []
    if isinstance(data, dict) and set(data) == _SECRET_REF:
        return found  # a Kubernetes Secret named by reference (server.kubernetes.secrets)
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{at}.{key}" if at else str(key)
            secret = isinstance(value, str) and _SECRET_FIELD.search(str(key))
            if secret and value and not _REFERENCE.match(value):
                found.append(where)
            elif not secret:
                found += literal_secrets(value, where)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += literal_secrets(value, f"{at}[{index}]")
    elif isinstance(data, str):
        password = _URL_PASSWORD.search(data)
        if password and not _REFERENCE.match(password[1]):
            found.append(at)
    return found


def _write_exported_stack(text: str, target: Path, source: str, force: bool = False) -> None:
    """Write `text` (the exported stack file, read from `source`, as errors name it) to
    `target` once mlstack reads it, every adapter accepts its options and it holds no secret
    but as a reference; nothing is written when it does not (StackError). An existing
    `target` that differs (the local stack, or an export someone edited: the image is theirs
    to add) is replaced only with `force`, and kept as `<target>.bak`; the file is written
    whole or not at all (a temporary file renamed over it)."""
    import os
    import tempfile

    import yaml

    from stack.config.stack_file import read_stack_file
    from stack.errors import StackConfigError, StackError
    from stack.plugins.registry import default_registry
    from stack.resolution import resolve_stack

    if not target.parent.is_dir():
        raise StackError(
            f"cannot write {target}: the folder {target.parent} does not exist (create it, "
            "or give -o a path in an existing folder)"
        )
    try:
        literals = literal_secrets(yaml.safe_load(text))
    except yaml.YAMLError:
        literals = []  # read_stack_file below says where the YAML is broken
    if literals:
        raise StackError(
            f"{source} holds a secret's value at {', '.join(literals)}: an exported stack "
            "file refers to secrets (${MLSTACK_DB_PASSWORD}), it never carries them; nothing "
            f"was written to {target}"
        )
    placeholder = "MLSTACK_DB_PASSWORD" not in os.environ  # a reference, checked for shape
    if placeholder:
        os.environ["MLSTACK_DB_PASSWORD"] = "unset"
    # checked in a scratch file, named in errors as the output it came from
    with tempfile.TemporaryDirectory(prefix="mlstack-export-") as scratch:
        checked = Path(scratch) / target.name
        checked.write_text(text)
        try:
            stack, doc = read_stack_file(checked)
            resolve_stack(stack, doc, default_registry(), None)  # every adapter's options too
        except StackConfigError as exc:
            named = [p.replace(str(checked), source) for p in exc.problems]
            raise StackConfigError(str(exc).replace(str(checked), source), named) from None
        except StackError as exc:
            raise StackError(str(exc).replace(str(checked), source)) from None
        finally:
            if placeholder:
                del os.environ["MLSTACK_DB_PASSWORD"]
    backup = target.with_name(target.name + ".bak")
    try:
        existing = target.read_text() if target.is_file() else None
        if existing is not None and existing != text:
            if not force:
                raise StackError(
                    f"{target} exists and differs from {source} (your local stack, or an "
                    "export you edited): nothing was written; give -o another path "
                    f"(stacks/prod.yaml), or --force to replace it (kept as {backup})"
                )
            backup.write_text(existing)
        write_atomic(target, text)
    except OSError as exc:
        raise StackError(f"cannot write {target}: {exc.strerror or exc}") from None
    kept = f"; the previous file is {backup}" if existing not in (None, text) else ""
    click.echo(f"wrote {target} (set MLSTACK_DB_PASSWORD before using it){kept}")
