"""`mlstack deploy`, `mlstack rollback`, `mlstack rollout status|history`, `mlstack undeploy`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from stack.cli.common import (
    SECONDS,
    VERSION,
    open_existing_session,
    open_session,
    parse_moment,
)
from stack.errors import StackError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from stack.contract.registry import ModelSelector
    from stack.contract.serving import EndpointProcesses, Package, ProcessInspector, Router
    from stack.rollout.history import RoutedSplit
    from stack.rollout.subjects import Target
    from stack.session import StackSession


class SharesType(click.ParamType[tuple[float, ...]]):
    """Canary steps on the command line: percentages (`10,50,100`) or shares (`0.1,0.5,1`),
    increasing, the last all traffic; else a usage error naming the option and the rule."""

    name = "STEPS"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = [float(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            numbers = []
        problem = _steps_problem(numbers)
        if problem:
            self.fail(
                f"{value!r}: {problem}; give increasing percentages ending at 100 (10,50,100) "
                "or shares ending at 1 (0.1,0.5,1)",
                param,
                ctx,
            )
        scale = 100 if max(numbers) > 1 else 1
        return tuple(n / scale for n in numbers)


def _steps_problem(numbers: list[float]) -> str | None:
    """What is wrong with canary steps as given (percent or shares), or None."""
    if not numbers or not all(math.isfinite(n) for n in numbers):
        return "not a list of numbers"
    if min(numbers) <= 0:
        return "each step must be more than 0"
    if numbers != sorted(set(numbers)):
        return "the steps must increase"
    if numbers[-1] not in (1.0, 100.0):
        return "the last step must be all traffic"
    return None


#: The click type of `--steps`.
SHARES = SharesType()

#: The `deploy` option that sets each field of a rollout plan.
_PLAN_OPTIONS = {
    "strategy": "--strategy",
    "steps": "--steps",
    "bake_seconds": "--bake",
    "max_hold_seconds": "--hold",
    "endpoint": "--endpoint",
}


def _plan_error(exc: ValidationError) -> click.BadParameter:
    """A rollout plan the options made invalid, as a usage error naming the option (the
    first problem, in pydantic's words without its link)."""
    error = exc.errors(include_url=False)[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    hint = _PLAN_OPTIONS.get(field, f"the rollout plan's {field or 'fields'}")
    return click.BadParameter(f"{error.get('input')!r}: {message}", param_hint=hint)


@click.command()
@click.argument("selector", metavar="MODEL@STATE|VERSION", type=VERSION)
@click.option(
    "--strategy",
    type=click.Choice(["direct", "canary", "shadow", "ab"]),
    default=None,
    help="How the version reaches traffic (default: the recipe's plan, else canary).",
)
@click.option("--steps", type=SHARES, help="Canary shares, e.g. 10,50,100.")
@click.option("--bake", "bake_seconds", type=SECONDS, help="Seconds at each step.")
@click.option(
    "--hold",
    "max_hold_seconds",
    type=SECONDS,
    help="Seconds a step may wait past its bake for evidence (too few requests), then "
    "the rollout stops undecided (exit 4).",
)
@click.option("--endpoint", help="Endpoint name (default: the model's name).")
@click.option(
    "--recipe",
    "recipe_location",
    type=click.Path(exists=True),
    help="Recipe whose rollout plan and gates apply.",
)
@click.option(
    "--target",
    type=click.Choice(["local", "kubernetes", "bento"]),
    default="local",
    help="local: serve on this machine; kubernetes: roll out on the cluster the kubeconfig "
    "names (server-side apply, Gateway API weights); bento: package the version as a bento "
    "(offline, mlstack's packages inside as wheels) and build the image kubernetes.image "
    "names with Docker, or print the command that does.",
)
@click.option("--dry-run", is_flag=True, help="kubernetes: print the manifests, apply nothing.")
@click.option("--reason", default="", help="Kept in the audit log.")
@click.pass_context
def deploy(
    ctx: click.Context,
    selector: ModelSelector,
    strategy: str | None,
    steps: tuple[float, ...] | None,
    bake_seconds: float | None,
    max_hold_seconds: float | None,
    endpoint: str | None,
    recipe_location: str | None,
    target: str,
    dry_run: bool,
    reason: str,
) -> None:
    """Serve a registry version: alone, or rolled out beside the one serving now."""
    from pydantic import ValidationError

    from stack.cli.bake_view import BakeView
    from stack.config.recipe_file import load_recipe
    from stack.config.rollout import RolloutPlan
    from stack.governance.service import Governance
    from stack.rollout import RolloutController

    recipe = load_recipe(Path(recipe_location)) if recipe_location else None
    with open_session(ctx, recipe) as session:
        version = Governance(session).version(selector)
        recipe = session.recipe or session.recipe_for(version, required=False)
        view = BakeView()
        base = recipe.spec.rollout if recipe else RolloutPlan()
        overrides: dict[str, Any] = {
            "strategy": strategy,
            "steps": steps,
            "bake_seconds": bake_seconds,
            "max_hold_seconds": max_hold_seconds,
            "endpoint": endpoint,
        }
        try:
            plan = RolloutPlan.model_validate(
                {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
            )
        except ValidationError as exc:
            raise _plan_error(exc) from None
        name = plan.endpoint or version.model
        if target == "bento":
            from stack.contract.capabilities import ServerCapability
            from stack.contract.serving import Packager
            from stack.errors import CapabilityMissing
            from stack.plugins.capabilities import declares

            if not declares(session, ServerCapability.PACKAGE):
                raise CapabilityMissing(
                    f"the stack's server ({type(session.server).__name__}) cannot package "
                    "(the `package` capability)"
                )
            packager = cast(Packager, session.server)  # the registry checked it
            _warn_for_cluster(session, name, refuse=False)
            package = packager.build(version, endpoint=name)
            _containerize(package)
            return
        if target == "kubernetes" and dry_run:
            from stack.rollout.kubernetes import render_manifests

            _warn_for_cluster(session, name, refuse=False)
            click.echo(render_manifests(session, version, plan), nl=False)
            return
        if dry_run:
            raise click.UsageError("--dry-run is for --target kubernetes")
        if target == "kubernetes":
            _warn_for_cluster(session, name, refuse=True)
        controller = RolloutController(session, progress=view, router=_router(session, target))
        with view:  # each stage's requests and verdict while it bakes
            result = controller.deploy(version, plan, reason=reason)
    for repair in result.repaired:  # a dead rollout's leftovers, put back first
        click.echo(f"before deploying: {repair}")
    colour = {"rolled_back": "red", "undecided": "yellow"}.get(result.outcome, "green")
    if result.stopped:  # nothing answers at its url: no revision to show as serving
        stopped = f"endpoint {result.endpoint.name} stopped: nothing takes its traffic"
        click.secho(f"{result.outcome}: {result.version}; {stopped}", fg=colour)
    else:
        click.secho(f"{result.outcome}: {result.version} on {result.endpoint.url}", fg=colour)
        weights = ", ".join(f"{ref} {w:.0%}" for ref, w in result.endpoint.split.weights.items())
        click.echo(f"  revision {result.endpoint.revision}: {weights}")
    for why in result.reasons:
        click.echo(f"  because: {why}")
    if result.outcome == "rolled_back":
        ctx.exit(3)
    if result.outcome == "undecided":  # no verdict: the challenger is back to approved
        ctx.exit(4)


def _warn_for_cluster(session: StackSession, endpoint: str, *, refuse: bool) -> None:
    """Each of the server's cluster warnings (ClusterManifests.cluster_warnings) for
    `endpoint` as a WARNING line on stderr (stdout may be manifests piped on); with
    `refuse`, a StackConfigError instead when one blocks a rollout. Nothing for a server
    that has no cluster path."""
    from stack.contract.capabilities import ServerCapability
    from stack.contract.serving import ClusterManifests
    from stack.errors import StackConfigError
    from stack.plugins.capabilities import declares

    if not declares(session, ServerCapability.KUBERNETES):
        return
    warnings = cast(ClusterManifests, session.server).cluster_warnings(endpoint)
    blocking = [w for w in warnings if w.blocks_rollout]
    if refuse and blocking:
        raise StackConfigError(
            "no rollout on the cluster: " + "; ".join(w.message for w in blocking)
        )
    for warning in warnings:
        click.secho(f"WARNING: {warning.message}", fg="yellow", err=True)


def _containerize(package: Package) -> None:
    """Say what was packaged, then build its image where a Docker daemon answers, else print
    the exact command that builds it (its environment inline: nothing to export)."""
    import os
    import subprocess

    from stack.orchestration.image import docker_available

    if package.replaced:  # its tag follows the version; the stack file may have changed
        click.echo(f"rebuilt {package.tag} (replaced the bento of that tag)")
    else:
        click.echo(f"built {package.tag}")
    if package.bundled:
        click.echo(f"  bundled: {', '.join(package.bundled)}")
    why_not = docker_available()
    if why_not is not None:
        click.echo(f"image {package.image} not built: {why_not}; build it with:")
        click.echo(f"  {package.shell()}")
        return
    click.echo(f"building {package.image}: {package.shell()}")
    done = subprocess.run(list(package.command), env={**os.environ, **package.env})
    if done.returncode != 0:
        raise click.ClickException(f"building {package.image} failed (exit {done.returncode})")
    click.echo(f"built {package.image}: push it where the cluster pulls from")


#: `--target` of the commands that act on endpoints (deploy has its own: it packages too).
TARGET = click.option(
    "--target",
    type=click.Choice(["local", "kubernetes"]),
    default="local",
    help="Where the endpoint runs: this machine, or the cluster the kubeconfig names.",
)


def _router(session: StackSession, target: str) -> Router:
    from stack.rollout.kubernetes import router_for

    return router_for(session, target)


@click.command()
@click.argument("model")
@click.option("--endpoint", help="Endpoint name (default: the model's name).")
@click.option("--reason", default="", help="Kept in the audit log.")
@TARGET
@click.pass_context
def rollback(
    ctx: click.Context, model: str, endpoint: str | None, reason: str, target: str
) -> None:
    """Send all traffic back to the previous serving version of MODEL."""
    from stack.rollout import RolloutController

    with open_session(ctx) as session:
        controller = RolloutController(session, router=_router(session, target))
        result = controller.rollback(model, endpoint=endpoint, reason=reason)
    click.echo(
        f"rolled back {result.endpoint.name}: revision {result.endpoint.revision}, "
        f"{', '.join(result.endpoint.split.weights)}"
    )


@click.command()
@click.argument("endpoint")
@TARGET
@click.pass_context
def undeploy(ctx: click.Context, endpoint: str, target: str) -> None:
    """Stop ENDPOINT, every process of it (in-flight requests finish; the prediction log is
    kept), including any its server left when it died; on the cluster, delete its objects."""
    with open_session(ctx) as session:
        if target != "local":
            router = _router(session, target)
            if endpoint not in {e.name for e in router.endpoints()}:
                from stack.rollout.traffic import recorded_elsewhere

                if f"{endpoint} on {target}" not in recorded_elsewhere(session.spine, "local"):
                    raise click.ClickException(f"no endpoint {endpoint!r} on the cluster")
                # deleted outside mlstack: the record that it answers is closed, so that
                # it no longer holds its model's serving version in place
                gone = "not on the cluster (deleted outside mlstack): its record is closed"
                _audit_undeployed(session, endpoint, gone, router)
                click.echo(f"{endpoint} is not on the cluster: recorded as undeployed")
                return
            try:
                router.undeploy(endpoint)
            except StackError as exc:
                # audited only once its route is gone (it takes no traffic), saying what
                # is left; a route still there: nothing changed for its traffic, no entry
                if endpoint not in {e.name for e in router.endpoints()}:
                    _audit_undeployed(session, endpoint, f"partly deleted: {exc}", router)
                raise
            _audit_undeployed(session, endpoint, "", router)
            click.echo(f"deleted {endpoint} from the cluster")
            return
        server = session.server
        running = endpoint in {e.name for e in server.endpoints()}
        # NotFound naming what is deployed, or a bad name, before anything is audited
        inspector = _inspector(session)
        found = inspector.processes(endpoint) if inspector is not None else []
        pids = ", ".join(f"{p.role} pid {p.pid}" for f in found for p in f.processes)
        if not running and not pids:
            # nothing runs: a dead server's leftovers cleared (no traffic changed, so
            # nothing to audit)
            server.undeploy(endpoint)
            click.echo(f"removed what was left of {endpoint} (it was not running)")
            return
        server.undeploy(endpoint)  # then audited: an entry never precedes what it records
        why = "" if running else f"its server was dead; stopped what it left: {pids}"
        _audit_undeployed(session, endpoint, why)
    if running:
        click.echo(f"stopped {endpoint}" + (f" ({pids})" if pids else ""))
    else:
        click.echo(f"stopped what the dead server of {endpoint} left: {pids}")


def _audit_undeployed(
    session: Any, endpoint: str, reason: str, router: Router | None = None
) -> None:
    """`endpoint.undeployed` in the audit log (of the endpoint on `router`'s target: this
    machine's when None), after the fact: a process killed between the two can leave an
    endpoint gone with no entry yet, never an entry for an endpoint that still takes
    traffic."""
    from stack.governance.service import Governance
    from stack.rollout.traffic import EndpointTraffic

    traffic = EndpointTraffic(session, Governance(session), router)
    traffic.audit("endpoint.undeployed", endpoint, reason)


@click.group("rollout")
def rollout_group() -> None:
    """Where rollouts stand, and what served when."""


@rollout_group.command()
@click.argument("endpoint", required=False)
@TARGET
@click.pass_context
def status(ctx: click.Context, endpoint: str | None, target: Target) -> None:
    """Each endpoint's split, health since its last change, and its last rollout event.
    Exits 1 when an endpoint is not running, or its prediction log cannot be read (its
    split and pods are shown, its health marked unreadable)."""
    from stack.contract.serving import HealthReport
    from stack.errors import HealthUnreadable
    from stack.rollout.history import routing_history
    from stack.rollout.subjects import endpoint_subject

    unreadable = False
    with open_existing_session(ctx) as session:
        router = _router(session, target)
        endpoints = [e for e in router.endpoints() if endpoint in (None, e.name)]
        found = _processes(session, endpoint) if target == "local" else {}
        names = {e.name for e in endpoints}
        broken = [f for f in found.values() if f.endpoint not in names]
        if not endpoints and not broken:
            raise click.ClickException(
                f"no endpoint {endpoint!r} is running" if endpoint else "no endpoint is running"
            )
        for current in endpoints:
            history = routing_history(session.spine, current.name, target)
            since = history[-1].at if history else None
            try:
                health = router.health(current.name, since=since)
                cannot = None
            except HealthUnreadable as exc:  # what the cluster says, the log's figures unread
                health = HealthReport(current.name, exc.ready, 0, 0.0, None, failing=exc.failing)
                cannot, unreadable = str(exc), True
            click.secho(f"{current.name}  {current.url}  revision {current.revision}", bold=True)
            for ref, weight in current.split.weights.items():
                line = f"  {ref:<20} {weight:>6.0%}"
                stats = health.versions.get(ref)
                if stats:
                    p99 = f"{stats.p99_latency_ms:.1f} ms" if stats.p99_latency_ms else "-"
                    line += f"  {stats.requests} req, {stats.error_rate:.1%} errors, p99 {p99}"
                click.echo(line)
            for ref in current.split.shadows:
                stats = health.versions.get(f"{ref} (shadow)")
                extra = ""
                if stats and stats.disagreement is not None:
                    extra = f"  {stats.requests} req, disagrees {stats.disagreement:.1%}"
                click.echo(f"  {ref:<20} shadow{extra}")
            for ref, why in health.failing.items():
                click.secho(f"  {ref} failing: {why}", fg="red")
            if cannot is not None:
                click.secho(f"  health unreadable: {cannot}", fg="red", err=True)
            events = [
                e
                for e in session.spine.audit_entries(subject=endpoint_subject(current.name, target))
                if e.action.startswith("rollout.")
            ]
            if events:
                last = events[-1]
                click.echo(f"  last: {last.action} at {last.at:%Y-%m-%d %H:%M:%S} {last.reason}")
                if last.action == "rollout.started" and (gone := _owner_gone(session, last)):
                    click.secho(f"  {gone}", fg="red")
            if current.name in found:
                _echo_processes(found[current.name])
        for dead in broken:
            click.secho(f"{dead.endpoint}  {dead.url}  NOT RUNNING", bold=True, fg="red")
            _echo_processes(dead)
            click.echo(
                f"  `mlstack undeploy {dead.endpoint}` stops what is left; a deploy starts anew"
            )
    if broken or unreadable:
        ctx.exit(1)


def _owner_gone(session: StackSession, started: Any) -> str | None:
    """What to say of a rollout in progress whose process is gone (judged as `doctor` judges
    it), else None: its traffic stays where that process left it until someone acts."""
    from stack.orchestration.lease import Liveness
    from stack.orchestration.reconcile import Doctor

    owner = started.payload.get("owner")
    if Doctor(session).owner_liveness(owner, started) is not Liveness.DEAD:
        return None
    who = f"pid {owner['pid']} on {owner.get('host')}" if isinstance(owner, dict) else "?"
    return (
        f"its process ({who}) is gone: the split stays as it left it until `mlstack doctor "
        "--repair` puts the champion back (or a new deploy takes the rollout over)"
    )


def _inspector(session: StackSession) -> ProcessInspector | None:
    """The stack's server when it declares the `processes` capability (checked against
    ProcessInspector when it was registered), else None."""
    from stack.contract.capabilities import ServerCapability
    from stack.plugins.capabilities import declares

    if not declares(session, ServerCapability.PROCESSES):
        return None
    return cast("ProcessInspector", session.server)


def _processes(session: StackSession, endpoint: str | None) -> dict[str, EndpointProcesses]:
    """What runs for each endpoint, as the server finds it (when it can tell)."""
    from stack.errors import NotFound

    inspector = _inspector(session)
    if inspector is None:
        return {}
    try:
        return {found.endpoint: found for found in inspector.processes(endpoint)}
    except NotFound:
        return {}


def _echo_processes(found: EndpointProcesses) -> None:
    port = found.url.rpartition(":")[2]
    answer = "nothing" if found.answering is None else f"revision {found.answering}"
    pids = ", ".join(
        f"{p.role} {p.pid}"
        + (" listening" if p.listening else "")
        + (" LEFT OVER" if p.stray else "")
        for p in found.processes
    )
    click.echo(f"  :{port} answers {answer}; processes: {pids or 'none'}")
    for problem in found.problems:
        click.secho(f"  problem: {problem}", fg="yellow")


@rollout_group.command()
@click.argument("model")
@click.option("--at", "at", help="Show only what served at this time (ISO).")
@click.option("--endpoint", help="Endpoint name (default: the model's name).")
@TARGET
@click.pass_context
def history(
    ctx: click.Context, model: str, at: str | None, endpoint: str | None, target: Target
) -> None:
    """Every traffic change of MODEL's endpoint (on this machine, or with --target
    kubernetes the cluster's endpoint of that name), its stops included; with --at, the
    traffic in force then, and the version the registry held as serving then."""
    from stack.governance.history import served_at
    from stack.rollout.history import routing_history, split_at

    name = endpoint or model
    with open_existing_session(ctx) as session:
        when = parse_moment(at)
        if when is not None:
            routed = split_at(session.spine, name, when, target)
            serving = served_at(session.spine, model, when)
            if routed is None and serving is None:
                raise click.ClickException(f"nothing of {model!r} was served at {when}")
            # two notions: the registry's lifecycle state, and what the endpoint answered with
            click.echo(f"serving at {when.isoformat()} (registry state): {serving or 'none'}")
            click.echo(f"traffic at {when.isoformat()} on endpoint {name!r}: {_traffic(routed)}")
            return
        changes = routing_history(session.spine, name, target)
        if not changes:
            from stack.monitoring.known import require_model

            require_model(session, model)  # a misspelt model: say so, not print nothing
            where = "" if target == "local" else f" on {target}"
            click.echo(f"endpoint {name!r}{where} has no traffic changes on record", err=True)
            return
        for routed in changes:
            click.echo(f"{routed.at:%Y-%m-%d %H:%M:%S}  {_split(routed)}  {routed.why}")


def _split(routed: RoutedSplit) -> str:
    """A traffic change as `history` lists it: the weights and shadows, or the stop."""
    if routed.stopped:
        return "endpoint stopped: nothing takes traffic"
    split = ", ".join(f"{r} {w:.0%}" for r, w in routed.weights.items())
    return split + (f" (shadow: {', '.join(routed.shadows)})" if routed.shadows else "")


def _traffic(routed: RoutedSplit | None) -> str:
    """What took the endpoint's traffic under `routed` (the change in force then)."""
    if routed is None:
        return "none (not deployed yet)"
    if routed.stopped:
        return f"none (the endpoint was stopped at {routed.at:%Y-%m-%d %H:%M:%S}: {routed.why})"
    return _split(routed)
