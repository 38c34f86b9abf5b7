"""The events of the lifecycle, as pluggy hook specifications.

Events named in VETOABLE_EVENTS ask before the core acts: an implementation returns
`Veto(reason)` to stop it. Every other event tells after the fact; its return value is ignored.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "mlstack"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

VETOABLE_EVENTS: frozenset[str] = frozenset(
    {"on_promotion_requested", "on_deploy_requested", "on_retrain_requested"}
)


class LifecycleSpecs:
    @hookspec
    def on_run_started(self, run_id: str, recipe: str) -> None:
        """A pipeline run of `recipe` is about to run its first step."""

    @hookspec
    def on_step_started(self, run_id: str, step: str) -> None:
        """A step is about to run."""

    @hookspec
    def on_step_finished(self, run_id: str, step: str, status: str) -> None:
        """A step succeeded, failed, or was reused from the run being resumed."""

    @hookspec
    def on_run_finished(self, run_id: str, recipe: str, state: str) -> None:
        """A pipeline run ended, `state` being `succeeded` or `failed`."""

    @hookspec
    def on_model_registered(self, version: Any) -> None:
        """A new model version (a `ModelVersion`) entered the registry as a candidate."""

    @hookspec
    def on_promotion_requested(self, version: Any, target_state: str, actor: str) -> Any:
        """Asked before a version moves to `target_state`; return Veto to stop it."""

    @hookspec
    def on_promoted(self, version: Any, previous_state: str) -> None:
        """A version moved to a new lifecycle state."""

    @hookspec
    def on_deploy_requested(self, version: Any, endpoint: str) -> Any:
        """Asked before a version is deployed to `endpoint`; return Veto to stop it."""

    @hookspec
    def on_deployed(self, version: Any, endpoint: Any) -> None:
        """A version is live on an endpoint revision."""

    @hookspec
    def on_rollback(self, endpoint: str, from_version: str, to_version: str, reason: str) -> None:
        """A rollout was rolled back automatically or by hand."""

    @hookspec
    def on_drift_detected(self, model: str, report: Any) -> None:
        """A monitoring policy was breached; `report` is the DriftReport."""

    @hookspec
    def on_retrain_requested(self, model: str, reason: str) -> Any:
        """Asked before a retraining run starts; return Veto to stop it."""
