"""Entry point of `mlstack`: a click group whose subcommands are imported only when invoked."""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from typing import Any, NoReturn

import click

import stack

# name -> (module:attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "adapters": ("stack.cli.adapters_cmd:adapters", "List installed adapters and capabilities."),
    "alerts": ("stack.cli.alerts_cmd:alerts_group", "Test the stack's alert routes; list firing."),
    "approve": ("stack.cli.governance_cmd:approve", "Approve a model version for a state."),
    "card": ("stack.cli.governance_cmd:card", "Write a model card (Markdown and HTML)."),
    "ci": ("stack.cli.ci_cmd:ci_group", "Write CI workflows that train, gate and promote."),
    "compile": ("stack.cli.pipeline_cmd:compile_recipe", "Compile a recipe for the orchestrator."),
    "cost": ("stack.cli.cost_cmd:cost", "Cost per endpoint and per 1,000 predictions; idle ones."),
    "schedule": ("stack.cli.pipeline_cmd:schedule", "Run a recipe on a cron schedule."),
    "deploy": ("stack.cli.serving_cmd:deploy", "Serve a model version, rolled out by plan."),
    "doctor": ("stack.cli.doctor_cmd:doctor", "Find (and --repair) what dead runs left behind."),
    "rollback": ("stack.cli.serving_cmd:rollback", "Back to the previous serving version."),
    "rollout": ("stack.cli.serving_cmd:rollout_group", "Rollout status and serving history."),
    "undeploy": ("stack.cli.serving_cmd:undeploy", "Stop an endpoint."),
    "features": ("stack.cli.features_cmd:features_group", "Plan and apply feature definitions."),
    "identity": ("stack.cli.governance_cmd:identity_group", "Signed identities for CI."),
    "image": ("stack.cli.image_cmd:image_group", "Build the image a recipe runs in."),
    "labels": ("stack.cli.monitor_cmd:labels_group", "Ingest late ground truth (labels)."),
    "llm": ("stack.cli.llm_cmd:llm_group", "Start or stop the local LLM generator."),
    "monitor": ("stack.cli.monitor_cmd:monitor_group", "Drift, quality and performance checks."),
    "models": ("stack.cli.governance_cmd:models", "The model inventory."),
    "prompts": ("stack.cli.prompts_cmd:prompts_group", "Versioned prompts, same lifecycle."),
    "promote": ("stack.cli.governance_cmd:promote", "Move a model version through its gate."),
    "reject": ("stack.cli.governance_cmd:reject", "Reject a model version."),
    "stack": ("stack.cli.stack_cmd:stack_group", "Validate or show a stack file."),
    "run": ("stack.cli.run_cmd:run", "Run a recipe on the stack (or resume a failed run)."),
    "runs": ("stack.cli.run_cmd:runs", "List recent pipeline runs and their steps."),
    "audit": ("stack.cli.audit_cmd:audit_group", "Read, export and verify the audit log."),
    "lineage": ("stack.cli.lineage_cmd:lineage", "Show what fed a node and what it fed."),
    "spine": ("stack.cli.spine_cmd:spine_group", "Create or upgrade the spine store schema."),
    "tracking": ("stack.cli.tracking_cmd:tracking_group", "Upload metrics saved while down."),
    "ui": ("stack.cli.ui_cmd:ui", "Serve the web console on 127.0.0.1."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target[0].partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(stack.__version__, prog_name="mlstack")
@click.option(
    "--stack",
    "stack_file",
    envvar="MLSTACK_STACK",
    type=click.Path(dir_okay=False),
    default=None,
    help="Stack file (default: ./stack.yaml if present, else the embedded local stack).",
)
@click.pass_context
def cli(ctx: click.Context, stack_file: str | None) -> None:
    """mlstack: one lifecycle over MLflow, Feast, BentoML, Evidently and the orchestrators."""
    ctx.obj = {"stack_file": stack_file}


#: Hints the wrapped tools print that are about their own internals, not the user's work.
_TOOL_NOTES = (
    "Inferred schema contains integer",
    "Add type hints to the `predict` method",
)


def quiet_libraries() -> None:
    """The wrapped tools' deprecation notices and hints are for their developers, not for
    someone running a recipe; `MLSTACK_WARNINGS=1` (or python -W) shows them again.

    The filter is applied where warnings are shown rather than in the filter list, which
    some libraries rewrite as they are imported."""
    if sys.warnoptions or os.environ.get("MLSTACK_WARNINGS"):
        return
    show = warnings.showwarning
    hidden = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)

    def shown(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        text = str(message)
        if issubclass(category, hidden) or any(note in text for note in _TOOL_NOTES):
            return
        show(message, category, *args, **kwargs)

    warnings.showwarning = shown


def _interrupted(exc: KeyboardInterrupt) -> NoReturn:
    """Exit as a shell expects of a process stopped by Ctrl-C (130) or SIGTERM (143)."""
    from stack import interrupts

    if isinstance(exc, interrupts.Terminated):
        click.echo("\nterminated (SIGTERM; what ran is recorded in the spine)", err=True)
        sys.exit(128 + 15)
    click.echo("\ninterrupted (what ran is recorded in the spine)", err=True)
    sys.exit(130)


def main(argv: list[str] | None = None) -> Any:
    from stack import interrupts
    from stack.errors import StackError  # light: errors imports nothing

    quiet_libraries()
    interrupts.install()
    try:
        return cli.main(args=argv, prog_name="mlstack", standalone_mode=False)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except click.exceptions.Abort as exc:  # click's word for a KeyboardInterrupt it caught
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted(exc.__cause__)
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except StackError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
