"""The `monitoring:` section of a recipe: what is checked, how often it is judged a breach,
who is told, and whether a breach retrains the model.

Drift tests and their thresholds default to Evidently's choice per column; a column listed
under `columns` overrides the test (`method`) or its threshold. The policy turns a check
into a breach; each threshold left out is not judged."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from stack.config.duration import Duration
from stack.contract.monitoring import TaskKind
from stack.contract.serving import TrafficKind

_FROZEN = ConfigDict(frozen=True, extra="forbid")

#: Metrics where a smaller value is better: a "drop" in performance is their rise, and a
#: champion rule on one compares the other way unless it says `higher_is_better`.
LOWER_IS_BETTER = frozenset(
    {
        "mae",
        "rmse",
        "mse",
        "log_loss",
        "mape",
        "brier_score",
        "loss",
        "error_rate",
        "cost_per_1k_predictions",  # `mlstack cost --log-metrics`
    }
)


class ColumnCheck(BaseModel):
    model_config = _FROZEN

    method: str | None = Field(default=None, description="An Evidently stattest name: psi, ks…")
    threshold: float | None = Field(default=None, gt=0)


class PerformancePolicy(BaseModel):
    """A breach when `metric` on the labelled rows of a window is worse than the version's
    own evaluation (the metric its training run logged) by more than `max_drop`."""

    model_config = _FROZEN

    metric: str
    max_drop: float = Field(ge=0)


class MonitoringPolicy(BaseModel):
    model_config = _FROZEN

    max_drifted_share: float | None = Field(
        default=0.5, ge=0, le=1, description="Breach when this share of columns drifts."
    )
    features: tuple[str, ...] = Field(
        default=(), description="Breach when any of these columns drifts."
    )
    prediction_drift: bool = Field(default=False, description="Breach when predictions drift.")
    max_missing_share: float | None = Field(default=None, ge=0, le=1)
    max_out_of_range_share: float | None = Field(default=None, ge=0, le=1)
    new_categories: bool = Field(default=False, description="Breach on an unseen category.")
    performance: PerformancePolicy | None = None


class AlertsSection(BaseModel):
    """The recipe's own alert route: a webhook that receives a JSON POST when a breach is
    first seen and when it resolves (once each, like the stack's `alerts:` routes), besides
    the routes the stack names and the log line."""

    model_config = _FROZEN

    webhook: HttpUrl | None = None
    webhook_env: str | None = Field(
        default=None, description="An environment variable holding the webhook URL (a secret)."
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class RetrainPolicy(BaseModel):
    """On a breach, run the recipe again through the stack's orchestrator; one retraining
    per `cooldown`, so one drift episode starts one retraining."""

    model_config = _FROZEN

    enabled: bool = False
    cooldown: Duration = timedelta(hours=24)
    recipe: str | None = Field(
        default=None,
        description="The recipe that retrains (a file or folder, relative to this recipe's "
        "folder); default: the recipe that built the model.",
    )


class RollbackPolicy(BaseModel):
    """On a breach of a version that is rolling out beside the serving one (a canary, an A/B
    arm or a shadow), send all traffic back to the serving version and reject the
    challenger: the rollout controller's rollback, audited as any other."""

    model_config = _FROZEN

    enabled: bool = False


class LabelJoin(BaseModel):
    """How late labels find their prediction: by request id always; by `entity` columns
    (present in the logged inputs) when a label carries an entity key, matching the latest
    prediction for that key in the `join_window` before the label was observed."""

    model_config = _FROZEN

    entity: tuple[str, ...] = ()
    join_window: Duration = timedelta(days=7)
    min_labelled_rows: int = Field(
        default=30, ge=1, description="Fewer labelled rows in a window: no metrics, a note."
    )


class TraceJudge(BaseModel):
    """An LLM-as-judge scorer on the stack's `judge:` endpoint."""

    model_config = _FROZEN

    judge: str = Field(pattern=r"^[a-z_][a-z0-9_]*$", description="The score's name.")
    criteria: str = Field(min_length=1)


class TracesCheck(BaseModel):
    """Online evaluation of an LLM app's traces (`source: traces`): a sample of the window's
    traces scored, each score written onto its trace as feedback, means held to floors."""

    model_config = _FROZEN

    experiment: str = Field(min_length=1, description="Where the app's traces are.")
    sample: int = Field(default=50, ge=1, le=10000)
    scorers: tuple[str | TraceJudge, ...] = Field(
        min_length=1,
        description="Code scorers by name (exact_match, json_valid, retrieval_hit_rate, "
        "context_overlap, length_ok) or {judge: name, criteria: …}.",
    )
    min_scores: dict[str, float] = Field(default_factory=dict)
    span: str | None = Field(
        default=None,
        description="The span whose inputs hold the question and whose outputs hold the "
        "answer and context (default: the root span).",
    )
    question_field: str = "question"  # in that span's inputs
    answer_field: str = "answer"  # in the root span's outputs (a mapping) or the outputs
    context_field: str = "context"


class MonitoringSection(BaseModel):
    model_config = _FROZEN

    source: Literal["endpoint", "batch", "traces"] = Field(
        default="endpoint",
        description="Whose predictions: an endpoint's log, the batches a scoring job "
        "recorded (stack.monitoring.BatchPredictionLog), or an LLM app's traces (`traces:`).",
    )
    traces: TracesCheck | None = None
    endpoint: str | None = Field(
        default=None, description="The endpoint (or batch log) name; default: the model's."
    )
    window: Duration = timedelta(hours=24)
    include_traffic: tuple[TrafficKind, ...] = Field(
        default=("live",),
        min_length=1,
        description="The kinds of request (their x-mlstack-traffic tag: live, bake, test, "
        "synthetic) a window holds; others are left out of drift, quality and performance.",
    )
    task: TaskKind = TaskKind.CLASSIFICATION
    columns: dict[str, ColumnCheck] = Field(
        default_factory=dict,
        description="Per-column drift settings; unlisted reference columns use the defaults.",
    )
    prediction_column: str = "prediction"
    min_rows: int = Field(default=30, ge=1, description="Fewer rows: drift is not judged.")
    sample_rows: int = Field(
        default=100_000,
        ge=100,
        description="Requests per version a streamed window keeps (a uniform sample) for "
        "drift, quality and performance; every request is counted. More: finer tests, more "
        "memory (about 2 KB a request of 20 features).",
    )
    labels: LabelJoin = LabelJoin()
    policy: MonitoringPolicy = MonitoringPolicy()
    alerts: AlertsSection = AlertsSection()
    rollback: RollbackPolicy = RollbackPolicy()
    retrain: RetrainPolicy = RetrainPolicy()
    html_report: Literal["always", "on_breach", "never"] = "always"
