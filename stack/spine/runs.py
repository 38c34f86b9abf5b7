"""Pipeline runs and their steps, and the lease of the process that drives each run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stack.errors import SpineError
from stack.spine import audit
from stack.spine.records import PipelineRunRecord, RunLease, StepRecord
from stack.spine.schema import PipelineRunRow, StepRunRow
from stack.spine.tables import SpineTables
from stack.spine.timeutil import from_text, now_utc, to_text


class PipelineRuns(SpineTables):
    def start_pipeline_run(
        self,
        run_id: str,
        *,
        recipe: str,
        orchestrator: str,
        resumed_from: str | None = None,
        param_overrides: Sequence[str] = (),
        lease: RunLease | None = None,
    ) -> None:
        """Record a run as running; `param_overrides` are its `--param`s as typed, `lease`
        the process that drives it (None: nobody here does, e.g. a cluster's own run)."""
        with self._transaction() as session:
            session.add(
                PipelineRunRow(
                    run_id=run_id,
                    recipe=recipe,
                    orchestrator=orchestrator,
                    state="running",
                    resumed_from=resumed_from,
                    started_at=to_text(now_utc()),
                    param_overrides=json.dumps(list(param_overrides)) if param_overrides else None,
                    lease_pid=lease.pid if lease else None,
                    lease_host=lease.host if lease else None,
                    lease_started=lease.started if lease else None,
                    lease_renewed_at=to_text(lease.renewed_at) if lease else None,
                )
            )

    def renew_lease(self, run_id: str, lease: RunLease) -> bool:
        """Move the lease's time to `lease.renewed_at` if the run is still running under
        this very lease; False otherwise (finished, abandoned, or taken over)."""
        with self._transaction() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None or row.state != "running" or not _held_by(row, lease):
                return False
            row.lease_renewed_at = to_text(lease.renewed_at)
            return True

    def abandon_pipeline_run(
        self, run_id: str, *, lease: RunLease | None, reason: str, actor: str
    ) -> bool:
        """Record that run `run_id`'s process died: the run `abandoned`, its running steps
        `failed` with `reason`, and a `run.abandoned` audit entry, in one transaction.

        Only while the run is still running under `lease` (the one judged dead): False,
        changing nothing, when it finished or was abandoned meanwhile (two repairs race)."""
        moment = to_text(now_utc())
        with self._transaction() as session:
            audit.lock_head(session)  # racing repairs are answered one after the other
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                raise SpineError(f"no pipeline run {run_id!r} in the spine")
            if row.state != "running" or (lease is not None and not _held_by(row, lease)):
                return False
            interrupted = [
                step
                for step in session.execute(
                    select(StepRunRow).where(
                        StepRunRow.run_id == run_id, StepRunRow.status == "running"
                    )
                ).scalars()
            ]
            for step in interrupted:
                step.status, step.error, step.finished_at = "failed", reason, moment
            at = interrupted[0].step if interrupted else "between steps"
            row.state, row.error, row.finished_at = "abandoned", f"{at}: {reason}", moment
            audit.append(
                session,
                actor=actor,
                action="run.abandoned",
                subject=f"run:{run_id}",
                reason=reason,
                payload={
                    "recipe": row.recipe,
                    "interrupted_steps": [s.step for s in interrupted],
                    "lease": _lease_json(row),
                },
            )
            return True

    def record_step(
        self,
        run_id: str,
        step: str,
        *,
        status: str,
        started_at: datetime,
        finished_at: datetime | None = None,
        output_uri: str | None = None,
        output_digest: str | None = None,
        error: str | None = None,
    ) -> None:
        """Create or update the record of one step of a pipeline run."""
        with self._transaction() as session:
            row = session.execute(
                select(StepRunRow).where(StepRunRow.run_id == run_id, StepRunRow.step == step)
            ).scalar_one_or_none()
            if row is None:
                row = StepRunRow(run_id=run_id, step=step, started_at=to_text(started_at))
                session.add(row)
            row.status = status
            row.finished_at = to_text(finished_at) if finished_at else None
            row.output_uri, row.output_digest, row.error = output_uri, output_digest, error

    def finish_pipeline_run(self, run_id: str, *, state: str, error: str | None = None) -> None:
        with self._transaction() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                raise SpineError(f"no pipeline run {run_id!r} in the spine")
            row.state, row.error, row.finished_at = state, error, to_text(now_utc())

    def pipeline_run(self, run_id: str) -> PipelineRunRecord | None:
        with Session(self._reads) as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                return None
            steps = session.execute(
                select(StepRunRow).where(StepRunRow.run_id == run_id).order_by(StepRunRow.id)
            ).scalars()
            return _run_record(row, list(steps))

    def pipeline_runs(
        self,
        *,
        recipe: str | None = None,
        state: str | None = None,
        finished_since: datetime | None = None,
        limit: int | None = 20,
    ) -> list[PipelineRunRecord]:
        """The latest runs (of `recipe`, in `state`, ended at or after `finished_since`),
        newest first; `limit` None for all."""
        query = select(PipelineRunRow).order_by(PipelineRunRow.started_at.desc()).limit(limit)
        if recipe is not None:
            query = query.where(PipelineRunRow.recipe == recipe)
        if state is not None:
            query = query.where(PipelineRunRow.state == state)
        if finished_since is not None:
            query = query.where(PipelineRunRow.finished_at >= to_text(finished_since))
        with Session(self._reads) as session:
            rows = session.execute(query).scalars().all()
        return [run for row in rows if (run := self.pipeline_run(row.run_id)) is not None]


def _held_by(row: PipelineRunRow, lease: RunLease) -> bool:
    return (row.lease_pid, row.lease_host, row.lease_started) == (
        lease.pid,
        lease.host,
        lease.started,
    )


def _lease_of(row: PipelineRunRow) -> RunLease | None:
    if row.lease_pid is None or row.lease_host is None or row.lease_renewed_at is None:
        return None
    return RunLease(
        row.lease_pid, row.lease_host, row.lease_started or "", from_text(row.lease_renewed_at)
    )


def _lease_json(row: PipelineRunRow) -> dict[str, Any] | None:
    if row.lease_pid is None:
        return None
    return {
        "pid": row.lease_pid,
        "host": row.lease_host,
        "started": row.lease_started,
        "renewed_at": row.lease_renewed_at,
    }


def _run_record(row: PipelineRunRow, steps: list[StepRunRow]) -> PipelineRunRecord:
    return PipelineRunRecord(
        run_id=row.run_id,
        recipe=row.recipe,
        orchestrator=row.orchestrator,
        state=row.state,
        resumed_from=row.resumed_from,
        started_at=from_text(row.started_at),
        finished_at=from_text(row.finished_at) if row.finished_at else None,
        error=row.error,
        param_overrides=tuple(json.loads(row.param_overrides)) if row.param_overrides else (),
        lease=_lease_of(row),
        steps=tuple(
            StepRecord(
                step=s.step,
                status=s.status,
                started_at=from_text(s.started_at),
                finished_at=from_text(s.finished_at) if s.finished_at else None,
                output_uri=s.output_uri,
                output_digest=s.output_digest,
                error=s.error,
            )
            for s in steps
        ),
    )
