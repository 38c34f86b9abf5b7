"""The governance part of a recipe: which model it produces, who owns it, and the gate each
lifecycle state has to pass (metric thresholds, champion comparison, checks, approvals)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stack.contract.states import LifecycleState

_FROZEN = ConfigDict(frozen=True, extra="forbid")

RiskTier = Literal["minimal", "limited", "high"]
Check = Literal["model_card", "drift_baseline"]


class ModelSpec(BaseModel):
    """The model a recipe produces, as the inventory and model cards show it."""

    model_config = _FROZEN

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    owner: str | None = None
    risk_tier: RiskTier = "limited"
    intended_use: str = ""
    limitations: str = ""


class Threshold(BaseModel):
    model_config = _FROZEN

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("give `min`, `max` or both")
        return self


class ChampionRule(BaseModel):
    """The challenger may not be worse than the serving version by more than `max_regression`
    on `metric`; with `same_dataset`, both must have been evaluated on the dataset of that
    name with the same fingerprint. `higher_is_better` defaults by the metric's name: false for
    errors and losses (`rmse`, `mae`, `mse`, `log_loss`, `mape`, `brier_score`, `loss`,
    `error_rate`) and cost (`cost_per_1k_predictions`), true for any other. With `max_ratio`,
    the challenger is held to a ratio instead: at most `max_ratio` times the champion's value
    (lower is better: "may not cost more than 1.5x"), at least the champion's divided by it
    (higher is better)."""

    model_config = _FROZEN

    metric: str
    max_regression: float = Field(default=0.0, ge=0)
    max_ratio: float | None = Field(default=None, gt=0)
    higher_is_better: bool = None  # type: ignore[assignment]  # set from `metric` below
    same_dataset: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _direction(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("higher_is_better") is None and "metric" in data:
            from stack.config.monitoring import LOWER_IS_BETTER

            data = {**data, "higher_is_better": data["metric"] not in LOWER_IS_BETTER}
        return data


class ApprovalRule(BaseModel):
    model_config = _FROZEN

    count: int = Field(default=1, ge=1)
    group: str | None = None
    allow_author: bool = False


class Gate(BaseModel):
    model_config = _FROZEN

    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    champion: ChampionRule | None = None
    checks: tuple[Check, ...] = ()
    approvals: ApprovalRule | None = None


class PromotionPolicy(BaseModel):
    """Gates by target state; a state without a gate only needs a legal transition."""

    model_config = _FROZEN

    gates: dict[LifecycleState, Gate] = Field(default_factory=dict)
