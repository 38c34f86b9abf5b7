"""`mlstack promote|approve|reject|card|models` and `mlstack identity token`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stack.cli.common import VERSION, open_existing_session, open_session, print_table
from stack.contract.registry import ModelSelector
from stack.contract.roles import Role
from stack.contract.states import LifecycleState, can_transition

#: A promotion may go to any state: `candidate` brings a retired or rejected version back.
TARGETS = click.Choice([s.value for s in LifecycleState])
#: An approval is for a state ahead of `candidate`.
STATES = click.Choice([s.value for s in LifecycleState if s is not LifecycleState.CANDIDATE])
RECIPE = click.option(
    "--recipe",
    "recipe_location",
    type=click.Path(exists=True),
    help="Recipe whose promotion policy applies (default: the one the version was built by).",
)


def _governance(  # type: ignore[no-untyped-def]
    ctx: click.Context, recipe_location: str | None, *, prompts: bool = False, read: bool = False
):
    """The session and its governance; with `prompts`, seen through the prompt registry;
    with `read`, of a stack that exists (open_existing_session)."""
    from stack.config.recipe_file import load_recipe
    from stack.governance.service import Governance

    recipe = load_recipe(Path(recipe_location)) if recipe_location else None
    opener = open_existing_session if read else open_session
    session = opener(ctx, recipe)  # the recipe's hooks are asked, as in `mlstack run`
    if prompts:
        from stack.llm.prompts import prompt_session

        return session, Governance(prompt_session(session))
    return session, Governance(session)


def run_promote(
    ctx: click.Context,
    selector: ModelSelector,
    target: str,
    *,
    reason: str,
    dry_run: bool,
    recipe_location: str | None,
    prompts: bool = False,
) -> None:
    """`promote` for model versions and for prompt versions (`mlstack prompts promote`)."""
    session, governance = _governance(ctx, recipe_location, prompts=prompts)
    with session:
        state = LifecycleState(target)
        if dry_run:
            version = governance.version(selector)
            if not can_transition(version.state, state):  # no gate decides a move that cannot be
                from stack.lifecycle import Lifecycle

                raise Lifecycle(governance.session).refusal(version, state)
            decision = governance.check(version, state)
            click.echo(decision.explain())
            if not decision.passed:  # a script asking "would it pass?" reads the exit code
                raise click.exceptions.Exit(1)
            return
        if state is LifecycleState.SERVING and not prompts and session.has(Role.SERVER):
            from stack.rollout.subjects import LOCAL
            from stack.rollout.traffic import recorded_elsewhere, refuse_if_live_elsewhere

            version = governance.version(selector)
            others = recorded_elsewhere(session.spine, LOCAL)  # the cluster's, as recorded
            refuse_if_live_elsewhere(session.server.endpoints(), version, others=others)
        change = governance.promotion(selector, state, reason=reason)
    # True when decided: promotions of one model are applied one at a time, so a racing
    # caller whose version took `serving` from another's is told whom it displaced.
    message = f"{'prompt ' if prompts else ''}{change.version.ref} is now {change.version.state}"
    if change.displaced:
        message += f"; it displaced {', '.join(change.displaced)}, which is now retired"
    click.echo(message)


def run_approve(
    ctx: click.Context,
    selector: ModelSelector,
    target: str,
    *,
    reason: str,
    recipe_location: str | None,
    prompts: bool = False,
) -> None:
    session, governance = _governance(ctx, recipe_location, prompts=prompts)
    with session:
        approval = governance.approve(selector, LifecycleState(target), reason=reason)
    click.echo(f"{approval.actor} approved {approval.subject} for {approval.target_state}")


@click.command()
@click.argument("selector", metavar="MODEL@VERSION", type=VERSION)
@click.option(
    "--to",
    "target",
    type=TARGETS,
    required=True,
    help="Target state (`candidate` brings a retired or rejected version back).",
)
@click.option("--reason", default="", help="Why: kept in the audit log.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Evaluate the gate only (hooks are not asked); exit 1 when it would fail or the "
    "move is not one the lifecycle allows.",
)
@RECIPE
@click.pass_context
def promote(
    ctx: click.Context,
    selector: ModelSelector,
    target: str,
    reason: str,
    dry_run: bool,
    recipe_location: str | None,
) -> None:
    """Move MODEL@VERSION to a state through its gate; a failed gate changes nothing."""
    run_promote(
        ctx, selector, target, reason=reason, dry_run=dry_run, recipe_location=recipe_location
    )


@click.command()
@click.argument("selector", metavar="MODEL@VERSION", type=VERSION)
@click.option("--to", "target", type=STATES, required=True, help="State the approval is for.")
@click.option("--reason", default="", help="Kept in the audit log.")
@RECIPE
@click.pass_context
def approve(
    ctx: click.Context,
    selector: ModelSelector,
    target: str,
    reason: str,
    recipe_location: str | None,
) -> None:
    """Approve MODEL@VERSION for a state (checked against the policy's group and author)."""
    run_approve(ctx, selector, target, reason=reason, recipe_location=recipe_location)


@click.command()
@click.argument("selector", metavar="MODEL@VERSION", type=VERSION)
@click.option("--reason", required=True, help="Why: kept in the audit log.")
@RECIPE
@click.pass_context
def reject(
    ctx: click.Context, selector: ModelSelector, reason: str, recipe_location: str | None
) -> None:
    """Reject MODEL@VERSION."""
    session, governance = _governance(ctx, recipe_location)
    with session:
        updated = governance.reject(selector, reason=reason)
    click.echo(f"{updated.ref} is now {updated.state.value}")


@click.command()
@click.argument("selector", metavar="MODEL@VERSION", type=VERSION)
@RECIPE
@click.pass_context
def card(ctx: click.Context, selector: ModelSelector, recipe_location: str | None) -> None:
    """Write the model card of MODEL@VERSION (Markdown and HTML) and print its paths."""
    session, governance = _governance(ctx, recipe_location, read=True)
    with session:
        paths = governance.write_card(selector)
    click.echo(f"{paths.markdown}\n{paths.html}")


@click.command()
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def models(ctx: click.Context, output: str) -> None:
    """The model inventory: owner, risk tier, state, serving version, evaluation, drift."""
    from stack.governance.inventory import inventory

    with open_existing_session(ctx) as session:
        rows = inventory(session)
    if output == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    from rich.table import Table

    table = Table(
        "model",
        "owner",
        "risk",
        "latest",
        "serving",
        "evaluation",
        "drift check",
        "alerts",
        title="models",
    )
    for r in rows:
        evaluation = ", ".join(f"{k}={v:.3g}" for k, v in sorted(r.last_evaluation.items()))
        table.add_row(
            r.model,
            r.owner,
            r.risk_tier,
            f"{r.latest_version} ({r.latest_state})",
            r.serving or "—",
            evaluation or "—",
            f"{r.last_drift_check:%Y-%m-%d %H:%M}" if r.last_drift_check else "never",
            str(r.open_alerts),
        )
    print_table(table)


@click.group("identity")
def identity_group() -> None:
    """Identities for CI (signed tokens)."""


@identity_group.command()
@click.argument("user")
@click.option("--ttl", default=3600, show_default=True, help="Seconds the token is valid.")
@click.pass_context
def token(ctx: click.Context, user: str, ttl: int) -> None:
    """Mint an MLSTACK_TOKEN for USER with the stack's identity.token_secret."""
    from stack.cli.common import stack_path
    from stack.config.stack_file import read_stack_file
    from stack.errors import StackError
    from stack.identity import mint_token

    stack, _ = read_stack_file(stack_path(ctx))
    secret = stack.identity.token_secret
    if secret is None:
        raise StackError("the stack has no identity.token_secret to sign tokens with")
    click.echo(mint_token(user, secret.get_secret_value(), ttl_seconds=ttl))
