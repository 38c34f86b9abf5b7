"""Runs whose process died, and what they left behind, found and put back.

A run recorded as `running` whose lease is dead (see `stack.orchestration.lease`) is
`abandoned`: its running step is recorded failed, the run abandoned. What it owned is put
back to a state the gates allow: endpoints whose rollout never completed return to their
serving version (or stop, when there is none), versions left in `canary` or `shadow` return
to `approved`, and tracking runs it opened and left open end KILLED. Every change is an
audit entry. A state change audited but never applied (its process killed between the two)
is audited again as the registry holds it (see `stack.governance.registry_audit`). `mlstack
doctor` lists the problems, `--repair` makes the changes, and `mlstack run --resume` of an
abandoned run makes them before it resumes.

Runs and rollouts on another host are judged by their lease's age only (a dead process and a
host cut off from the spine look alike from here): an expired one is `stale`, reported and
left alone unless the caller takes stale ones over."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, cast

from stack.contract.capabilities import TrackerCapability
from stack.contract.orchestration import RunState
from stack.contract.roles import Role
from stack.contract.serving import Router
from stack.contract.tracking import OrphanRunCloser, RunStatus
from stack.errors import StackError
from stack.identity import current_actor
from stack.orchestration.lease import Liveness, judge
from stack.plugins.capabilities import declares
from stack.rollout.subjects import endpoint_subject, target_of
from stack.session import StackSession
from stack.spine.audit import AuditEntry
from stack.spine.records import PipelineRunRecord, RunLease
from stack.spine.timeutil import now_utc

REASON = "reconcile"
#: What `doctor` says of a problem it leaves: an owner it cannot judge from this host.
UNREPAIRABLE_STALE = (
    "cannot be repaired from here (if its process is surely gone, --take-over-stale judges it dead)"
)
#: The event recorded when every tracking run left open by a dead run was ended.
TRACKING_RECONCILED = "doctor.tracking_reconciled"


class ProblemKind(StrEnum):
    RUN = "run"  # recorded running, its process dead (or stale on another host)
    ENDPOINT = "endpoint"  # traffic no live rollout accounts for
    VERSION = "version"  # canary/shadow with no rollout in progress
    TRACKING = "tracking"  # tracking runs left open by a run that is not running
    AUDIT = "audit"  # the log tells a state the registry does not hold


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    subject: str  # run:ID, endpoint:NAME, model@N, run:ID (its tracking runs)
    found: str
    remedy: str | None  # what --repair does; None when it cannot be repaired from here
    fix: Callable[[], str] | None = None
    stale: bool = False  # its owner cannot be judged from here (another host, no lease)

    @property
    def repairable(self) -> bool:
        return self.fix is not None

    @property
    def left(self) -> str:
        """What `doctor` says of it when it cannot repair it."""
        return UNREPAIRABLE_STALE if self.stale else "cannot be repaired from here"


@dataclass(frozen=True, slots=True)
class Repair:
    problem: Problem
    outcome: str
    done: bool


class Doctor:
    """`Doctor(session).examine()` lists problems; `.repair()` fixes the repairable ones in
    dependency order (runs, then endpoints, then versions, then tracking runs), examining
    again before each kind, since one repair changes what the next sees.

    `take_over_stale`: judge a stale lease (another host, not renewed for
    `lease.STALE_AFTER`) or a run with no lease as dead; only for one known to be gone."""

    def __init__(
        self,
        session: StackSession,
        *,
        take_over_stale: bool = False,
        router: Router | None = None,
    ) -> None:
        """`router`: where the endpoints run (the cluster's); None: the stack's server."""
        self.session = session
        self.take_over_stale = take_over_stale
        self.actor = current_actor()
        self.router = router

    # -- examining ------------------------------------------------------------------------

    def examine(self) -> list[Problem]:
        return [
            *_checked(ProblemKind.RUN, self.run_problems),
            *_checked(ProblemKind.ENDPOINT, self.endpoint_problems),
            *_checked(ProblemKind.VERSION, self.version_problems),
            *_checked(ProblemKind.TRACKING, self.tracking_problems),
            *_checked(ProblemKind.AUDIT, self.audit_problems),
        ]

    def repair(self) -> list[Repair]:
        repairs: list[Repair] = []
        for kind, find in (
            (ProblemKind.RUN, self.run_problems),
            (ProblemKind.ENDPOINT, self.endpoint_problems),
            (ProblemKind.VERSION, self.version_problems),
            (ProblemKind.AUDIT, self.audit_problems),
        ):
            repairs.extend(_apply(problem) for problem in _checked(kind, find))
        asked = self.session.has(Role.TRACKER) and self._any_died()
        tracking = [_apply(p) for p in _checked(ProblemKind.TRACKING, self.tracking_problems)]
        if asked and all(r.done for r in tracking):
            self.session.spine.record_event(TRACKING_RECONCILED, "doctor", {})
        return repairs + tracking

    def run_problems(self) -> list[Problem]:
        problems = []
        for record in self.session.spine.pipeline_runs(state=RunState.RUNNING.value, limit=None):
            liveness = self.liveness(record.lease)
            if liveness is Liveness.ALIVE:
                continue
            subject, found = f"run:{record.run_id}", _run_finding(record, liveness)
            if liveness is Liveness.DEAD:
                remedy = "record it abandoned (its running step failed); `--resume` it after"
                problems.append(
                    Problem(ProblemKind.RUN, subject, found, remedy, self._abandon(record))
                )
            else:
                problems.append(Problem(ProblemKind.RUN, subject, found, None, stale=True))
        return problems

    def endpoint_problems(self) -> list[Problem]:
        if not self.session.has(Role.SERVER):
            return []
        recovery = self._recovery()
        target = target_of(self.session, self.router)
        unjudged = [
            Problem(
                ProblemKind.ENDPOINT,
                endpoint_subject(name, target),
                f"rollout started {entry.at:%Y-%m-%d %H:%M:%S} by "
                + (_owner_text(entry.payload.get("owner")) or "an unrecorded process")
                + f": its owner is {liveness.value} from here",
                None,
                stale=True,
            )
            for name, entry, liveness in recovery.unjudged_rollouts()
        ]
        return unjudged + [
            Problem(
                ProblemKind.ENDPOINT,
                endpoint_subject(stranded.endpoint.name, target),
                stranded.describe(),
                stranded.remedy(),
                _bound(recovery.restore_endpoint, stranded),
            )
            for stranded in recovery.stranded_endpoints()
        ]

    def version_problems(self) -> list[Problem]:
        if not self.session.has(Role.REGISTRY):
            return []
        recovery = self._recovery() if self.session.has(Role.SERVER) else None
        if recovery is None:
            return []
        return [
            Problem(
                ProblemKind.VERSION,
                stranded.ref,
                f"{stranded.state.value} with no rollout in progress",
                "move it back to approved",
                _bound(recovery.restore_version, stranded),
            )
            for stranded in recovery.stranded_versions()
        ]

    def audit_problems(self) -> list[Problem]:
        """Versions whose audited state the registry does not hold (a process killed between
        the audit entry and the registry write): the log is put right, the registry kept."""
        if not self.session.has(Role.REGISTRY):
            return []
        from stack.governance import registry_audit

        return [
            Problem(
                ProblemKind.AUDIT,
                found.ref,
                found.describe(),
                f"audit it {found.registered.value}, as the registry says",
                partial(registry_audit.reconcile, self.session, found, actor=self.actor),
            )
            for model in self.session.registry.models()
            for found in registry_audit.disagreements(self.session, model)
        ]

    def tracking_problems(self) -> list[Problem]:
        """Only runs that died leave tracking runs open (a failed step ends its own, and
        the tracker ends the rest at exit): the tracker is asked only when there are some."""
        if not self.session.has(Role.TRACKER) or not self._any_died():
            return []
        if not declares(self.session, TrackerCapability.CLOSE_ORPHAN_RUNS):
            return []
        tracker = cast(OrphanRunCloser, self.session.tracker)  # the registry checked it
        problems = []
        for run_id, tracking_runs in sorted(tracker.open_runs_by_pipeline_run().items()):
            record = self.session.spine.pipeline_run(run_id)
            if record is None:  # a run of another spine: not ours to judge
                continue
            if record.state == RunState.RUNNING.value and self.liveness(record.lease) in (
                Liveness.ALIVE,
                Liveness.STALE,
                Liveness.UNKNOWN,
            ):
                continue
            problems.append(
                Problem(
                    ProblemKind.TRACKING,
                    f"run:{run_id}",
                    f"{len(tracking_runs)} tracking run(s) left open ({', '.join(tracking_runs)})"
                    f" by a run that is {_state(record, self.liveness(record.lease))}",
                    "end them KILLED",
                    self._end_tracking(tracker, run_id, tracking_runs),
                )
            )
        return problems

    # -- judging ----------------------------------------------------------------------------

    def _any_died(self) -> bool:
        """A run died since the tracker was last reconciled (or is dead and not yet
        recorded so): asking the tracker costs seconds, and is rarely needed."""
        spine = self.session.spine
        checked = spine.events(name=TRACKING_RECONCILED)
        since = checked[-1].at if checked else None
        if spine.pipeline_runs(state=RunState.ABANDONED.value, finished_since=since, limit=1):
            return True
        running = spine.pipeline_runs(state=RunState.RUNNING.value, limit=None)
        return any(self.liveness(record.lease) is Liveness.DEAD for record in running)

    def liveness(self, lease: RunLease | None) -> Liveness:
        liveness = judge(lease, now_utc())
        if self.take_over_stale and liveness in (Liveness.STALE, Liveness.UNKNOWN):
            return Liveness.DEAD
        return liveness

    def owner_liveness(self, owner: Mapping[str, Any] | None, entry: AuditEntry) -> Liveness:
        """A rollout's owner: its process, renewed as long as the run it belongs to is."""
        if not owner or not isinstance(owner.get("pid"), int):
            return self.liveness(None)
        renewed = entry.at
        run_id = owner.get("run_id")
        run = self.session.spine.pipeline_run(str(run_id)) if run_id else None
        if run is not None and run.state == RunState.RUNNING.value and run.lease is not None:
            renewed = max(renewed, run.lease.renewed_at)
        elif run is not None and run.state != RunState.RUNNING.value:
            return Liveness.DEAD  # the run it worked for has ended
        lease = RunLease(owner["pid"], str(owner.get("host")), str(owner.get("started")), renewed)
        return self.liveness(lease)

    # -- repairs ----------------------------------------------------------------------------

    def _recovery(self) -> Any:
        from stack.rollout.recovery import RolloutRecovery

        return RolloutRecovery(self.session, self.owner_liveness, self.router)

    def _abandon(self, record: PipelineRunRecord) -> Callable[[], str]:
        def fix() -> str:
            who = f"pid {record.lease.pid} on {record.lease.host}" if record.lease else "unknown"
            done = self.session.spine.abandon_pipeline_run(
                record.run_id,
                lease=record.lease,
                reason=f"abandoned: its process ({who}) died",
                actor=self.actor,
            )
            return "recorded abandoned" if done else "finished meanwhile: left as it is"

        return fix

    def _end_tracking(
        self, tracker: OrphanRunCloser, run_id: str, tracking_runs: tuple[str, ...]
    ) -> Callable[[], str]:
        def fix() -> str:
            tracker.end_runs(tracking_runs, RunStatus.KILLED)
            self.session.spine.audit(
                actor=self.actor,
                action="tracking.runs_killed",
                subject=f"run:{run_id}",
                reason=f"{REASON}: left open by a run that is not running",
                payload={"tracking_runs": list(tracking_runs), "status": RunStatus.KILLED.value},
            )
            return f"ended KILLED: {', '.join(tracking_runs)}"

        return fix


def take_over(session: StackSession, record: PipelineRunRecord) -> PipelineRunRecord:
    """Run `record` (recorded running) as `--resume` may take it: its process dead, it is
    abandoned and everything dead runs left behind is repaired; returns it as recorded
    now. Raises StackError when its process lives, or cannot be judged from this host."""
    doctor = Doctor(session)
    liveness = doctor.liveness(record.lease)
    if liveness is not Liveness.DEAD:
        raise StackError(
            f"run {record.run_id} is {_state(record, liveness)}: "
            + (
                "wait for it to end, or stop it first"
                if liveness is Liveness.ALIVE
                else "if its process is gone, `mlstack doctor --repair --take-over-stale` "
                "records it abandoned (then resume it)"
            )
        )
    repairs = doctor.repair()
    for done in (r for r in repairs if r.done):
        print(f"mlstack: {done.problem.subject}: {done.outcome}", file=sys.stderr)
    failures = [r for r in repairs if not r.done]
    if failures:
        listed = "".join(f"\n  {r.problem.subject}: {r.outcome}" for r in failures)
        raise StackError(f"run {record.run_id} cannot be resumed until this is repaired:{listed}")
    updated = session.spine.pipeline_run(record.run_id)
    assert updated is not None
    return updated


def describe_state(record: PipelineRunRecord) -> str:
    """The run's state as `mlstack runs` shows it: a running run judged by its lease."""
    if record.state != RunState.RUNNING.value:
        return record.state
    return _state(record, judge(record.lease, now_utc()))


def _state(record: PipelineRunRecord, liveness: Liveness) -> str:
    if record.state != RunState.RUNNING.value:
        return record.state
    lease = record.lease
    if lease is None or liveness is Liveness.UNKNOWN:
        return "running (no lease recorded: not judged)"
    if liveness is Liveness.DEAD:
        return f"abandoned (its process, pid {lease.pid} on {lease.host}, died)"
    if liveness is Liveness.STALE:
        return (
            f"stale (on {lease.host}, lease not renewed since "
            f"{lease.renewed_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
    return f"running (pid {lease.pid} on {lease.host})"


def _run_finding(record: PipelineRunRecord, liveness: Liveness) -> str:
    running = [s.step for s in record.steps if s.status == "running"]
    at = f"at step {running[0]}" if running else "between steps"
    return f"{record.recipe} {at}: {_state(record, liveness)}"


def _owner_text(owner: object) -> str | None:
    if not isinstance(owner, Mapping) or "pid" not in owner:
        return None
    return f"pid {owner['pid']} on {owner.get('host')}"


def _bound(method: Callable[[Any, str], str], target: object) -> Callable[[], str]:
    return lambda: method(target, REASON)


def _checked(kind: ProblemKind, find: Callable[[], list[Problem]]) -> list[Problem]:
    """The problems `find` finds; a check that cannot be made (its tool unreachable) is a
    problem itself, named, rather than a traceback."""
    try:
        return find()
    except Exception as exc:
        found = f"could not be checked: {type(exc).__name__}: {_first_line(exc)}"
        return [Problem(kind, f"{kind.value}s", found, None)]


def _apply(problem: Problem) -> Repair:
    if problem.fix is None:
        return Repair(problem, problem.left, False)
    try:
        return Repair(problem, problem.fix(), True)
    except Exception as exc:  # a tool that refuses: reported, the other repairs go on
        return Repair(problem, f"not repaired: {type(exc).__name__}: {_first_line(exc)}", False)


def _first_line(exc: BaseException) -> str:
    return str(exc).partition("\n")[0]
