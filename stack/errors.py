"""Errors a user can catch, each with a message that says what to do next."""

from __future__ import annotations


class StackError(Exception):
    """Base of every error mlstack raises on purpose."""


class StackConfigError(StackError):
    """A stack.yaml or recipe.yaml is invalid; the message names the file, line and field."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems if problems is not None else [message]
        super().__init__(message)


class UnknownAdapter(StackError):
    """A stack names an adapter no installed distribution provides and mlstack does not know
    of (a typo, most often): the message says the closest names and the known ones."""

    def __init__(self, adapter: str, role: str, detail: str) -> None:
        self.adapter = adapter
        self.role = role
        super().__init__(f"no adapter {adapter!r} for role {role!r} ({detail})")


class AdapterNotInstalled(StackError):
    """A stack names an adapter whose distribution (or wrapped tool) is not installed."""

    def __init__(self, adapter: str, role: str, package: str | None, detail: str = "") -> None:
        self.adapter = adapter
        self.role = role
        self.package = package
        install = f"pip install {package}" if package else "install the package that provides it"
        message = f"adapter {adapter!r} for role {role!r} is not installed: {install}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class AdapterConflict(StackError):
    """Two registrations claim the same adapter name for the same role."""


class CapabilityMissing(StackError):
    """The stack cannot do what a recipe asks (for example a canary rollout)."""


class CapabilityNotImplemented(StackError):
    """An adapter declares a capability without the methods of the protocol it promises;
    the message names the adapter, the capability and the missing methods."""


class NotFound(StackError, LookupError):
    """A run, model version, endpoint or other named thing does not exist."""


class TrackingUnavailable(StackError):
    """The tracking backend could not be reached; nothing logged was dropped (see message)."""


class TrackingDataRefused(StackError, ValueError):
    """A metric, param or tag the tracking store refuses on its own merits (its key or value
    breaks the store's rules); the message names the key and the rule. Nothing of the call
    that raised was logged; the run's other data is unaffected."""


class EndpointDown(StackError):
    """An endpoint stopped running while a rollout needed it; the message names what died
    and what to run. The rollout was ended (audited, its challenger back to approved)."""


class HealthUnreadable(StackError):
    """An endpoint's prediction log could not be read (the message names the log, its URL
    without password, and what failed); `ready` and `failing` (why, by version ref) are
    what the rest of the evidence, its pods, says."""

    def __init__(self, message: str, *, ready: bool, failing: dict[str, str]) -> None:
        super().__init__(message)
        self.ready = ready
        self.failing = failing


class InvalidTransition(StackError):
    """A model version was asked to move between lifecycle states that are not connected."""


class StepFailed(StackError):
    """A recipe step raised; the run stops there and can be resumed from that step."""

    def __init__(
        self,
        run_id: str,
        step: str,
        error: str,
        recipe: str = "<recipe>",
        traceback_file: str | None = None,
    ) -> None:
        """`error`: the step's error as the spine records it (the exception's line, then
        where in the recipe's code it was raised); `traceback_file`: where the whole
        traceback is kept."""
        self.run_id = run_id
        self.step = step
        self.error = error
        self.traceback_file = traceback_file
        shown = error.replace("\n", "\n  ")
        kept = f"\n  full traceback: {traceback_file}" if traceback_file else ""
        super().__init__(
            f"step {step!r} failed in run {run_id}: {shown}{kept}\n"
            f"fix it, then resume with: mlstack run {recipe} --resume {run_id}"
        )


class Vetoed(StackError):
    """A lifecycle hook refused an action (a promotion, a deployment, …)."""

    def __init__(self, event: str, reasons: list[str]) -> None:
        self.event = event
        self.reasons = reasons
        super().__init__(f"{event} vetoed: " + "; ".join(reasons))


class GateFailed(StackError):
    """A promotion did not pass its gate; `decision` holds every rule with its numbers."""

    def __init__(self, message: str, decision: object) -> None:
        self.decision = decision
        super().__init__(message)


class ApprovalRefused(StackError):
    """An approval that the policy does not allow (self-approval, outside the group, …)."""


class AuditChainBroken(StackError):
    """The audit log no longer verifies: an entry was edited, reordered or deleted."""


class SpineError(StackError):
    """The spine store could not be opened or migrated."""


class RolloutInProgress(StackError):
    """Another process is deploying to the endpoint (a rollout bakes there): nothing was
    changed; let it end, or end it with `mlstack rollback`."""


class LockTimeout(SpineError):
    """Another process held a spine lock (a model's promotions) for longer than the wait;
    nothing was changed, and the command can be run again."""
