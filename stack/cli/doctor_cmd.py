"""`mlstack doctor`: runs whose process died and what they left behind; `--repair` fixes."""

from __future__ import annotations

import click

from stack.cli.common import open_existing_session
from stack.cli.serving_cmd import TARGET


@click.command()
@click.option("--repair", is_flag=True, help="Put back what can be put back (each change audited).")
@click.option(
    "--take-over-stale",
    is_flag=True,
    help="Also judge as dead the runs and rollouts of other hosts whose lease expired, and "
    "runs with no lease: only when you know their process is gone.",
)
@TARGET
@click.pass_context
def doctor(ctx: click.Context, repair: bool, take_over_stale: bool, target: str) -> None:
    """Find runs recorded as running whose process died (`abandoned`), endpoints whose
    rollout never completed, versions left in canary or shadow with no rollout behind them,
    tracking runs left open by runs that are not running, and state changes audited but
    never applied by the registry (the log is put right; the registry is the truth).

    \b
      mlstack doctor            # list them; exit 1 if there are any
      mlstack doctor --repair   # put them back; exit 1 if any could not be

    A run on another host is judged by its lease's age only (`stale` when it expired):
    listed, and left alone unless --take-over-stale. After a repair, `mlstack run RECIPE
    --resume RUN_ID` finishes an abandoned run from the step that was interrupted."""
    from stack.orchestration.reconcile import Doctor

    with open_existing_session(ctx) as session:
        router = None
        if target != "local":
            from stack.rollout.kubernetes import router_for

            router = router_for(session, target)
        found = Doctor(session, take_over_stale=take_over_stale, router=router)
        if not repair:
            problems = found.examine()
            for problem in problems:
                remedy = problem.remedy or problem.left
                click.echo(f"{problem.kind.value:<9} {problem.subject}  {problem.found}")
                click.echo(f"          --repair: {remedy}")
            click.echo(_summary(len(problems), "found") if problems else "no problems found")
            if problems:
                ctx.exit(1)
            return
        repairs = found.repair()
        for done in repairs:
            mark = "repaired" if done.done else "LEFT"
            click.echo(
                f"{mark:<9} {done.problem.kind.value} {done.problem.subject}: {done.outcome}"
            )
        failed = [r for r in repairs if not r.done]
        if not repairs:
            click.echo("no problems found")
        elif failed:
            click.echo(_summary(len(failed), "not repaired"))
            ctx.exit(1)
        else:
            click.echo(_summary(len(repairs), "repaired"))


def _summary(count: int, what: str) -> str:
    return f"{count} problem{'s' if count != 1 else ''} {what}"
