"""The rollout part of a recipe (or of `mlstack deploy`): how a challenger reaches traffic and
the service levels it must hold on the way; a breach rolls back automatically."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_FROZEN = ConfigDict(frozen=True, extra="forbid")

Strategy = Literal["direct", "canary", "shadow", "ab"]
DEFAULT_DEADLINE_MS = 10_000.0  # generous: an LLM app may take seconds per answer


class ServiceLevels(BaseModel):
    """Judged on the challenger's own requests in each bake window (from the prediction log)."""

    model_config = _FROZEN

    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, gt=0)
    max_p99_ratio: float | None = Field(
        default=2.0,
        gt=0,
        description="The challenger's p99 latency at most this many times the champion's "
        "(same window, or the last one the champion had traffic in); None: no such rule.",
    )
    p99_ratio_floor_ms: float = Field(
        default=100.0,
        ge=0,
        description="A p99 within this many ms of the champion's never breaks max_p99_ratio "
        "(a challenger in a process of its own pays a few ms per call; a loaded machine's "
        "scheduling adds more to either).",
    )
    max_disagreement: float | None = Field(
        default=None, ge=0, le=1, description="Shadow: share of answers differing from live."
    )
    min_requests: int = Field(
        default=20,
        ge=0,
        description="Fewer requests in a window cannot be judged: the rollout holds "
        "(up to the plan's max_hold_seconds).",
    )


class RolloutPlan(BaseModel):
    model_config = _FROZEN

    strategy: Strategy = "canary"
    endpoint: str | None = Field(default=None, description="Default: the model's name.")
    steps: tuple[float, ...] = Field(
        default=(0.1, 0.5, 1.0), description="Canary: the challenger's share at each step."
    )
    bake_seconds: float = Field(default=60.0, ge=0, description="Time at each step.")
    check_seconds: float = Field(default=5.0, gt=0, description="How often SLOs are checked.")
    ab_share: float = Field(default=0.5, gt=0, lt=1, description="A/B: the challenger's arm.")
    max_hold_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long a step may bake past bake_seconds while its evidence is "
        "missing (too few requests, health unreadable); then the rollout stops undecided: "
        "traffic back to the champion, the challenger back to approved.",
    )
    challenger_deadline_ms: float | None = Field(
        default=None,
        gt=0,
        description="A challenger's answer later than this is a miss: the champion answers "
        "and the miss counts as the challenger's error. Default: slo.max_p99_ms, else 10000.",
    )
    probe_seconds: float | None = Field(
        default=1.0,
        gt=0,
        description="How often, during a bake, the controller sends each version it judges "
        "a request of its own (the version's input example, pinned to it, tagged "
        "x-mlstack-traffic: probe) to see failures that never reach the endpoint's log: "
        "connection resets, refusals, answers that never come. None: no probes. Only a "
        "server that can probe (BentoML) is probed.",
    )
    probe_timeout_ms: float | None = Field(
        default=None,
        gt=0,
        description="A probe with no answer after this long failed. Default: the challenger "
        "deadline plus 5000 ms (the endpoint itself answers a missed deadline, by fallback).",
    )
    slo: ServiceLevels = ServiceLevels()

    @field_validator("steps")
    @classmethod
    def _increasing_shares(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if not steps:
            raise ValueError("give at least one step")
        if any(not 0 < s <= 1 for s in steps):
            raise ValueError("each step is a share in (0, 1]; 10% is 0.1")
        if list(steps) != sorted(set(steps)):
            raise ValueError("steps must increase")
        if steps[-1] != 1.0:
            raise ValueError("the last step must be 1.0 (all traffic)")
        return steps

    def deadline_ms(self) -> float:
        """How long a challenger may take to answer one request, in ms."""
        return self.challenger_deadline_ms or self.slo.max_p99_ms or DEFAULT_DEADLINE_MS

    def probe_timeout_s(self) -> float:
        """How long a probe waits for its answer, in seconds."""
        return (self.probe_timeout_ms or self.deadline_ms() + 5000.0) / 1000
