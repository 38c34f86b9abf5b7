"""The stack file's `alerts:` and `cost:` sections.

`alerts:` says where mlstack's own alerts go (monitoring breaches, idle endpoints): through
Alertmanager when the stack names one (it groups, silences and de-duplicates); otherwise
straight to Apprise URLs (Slack, Teams, PagerDuty, email, webhooks...), once per breach until
it resolves, then a resolved notice. `cost:` prices `mlstack cost`."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from stack.config.duration import Duration

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class AlertRouting(BaseModel):
    """`alerts: {alertmanager: http://alertmanager:9093}` or `alerts: {notify: [...]}`."""

    model_config = _FROZEN

    alertmanager: HttpUrl | None = Field(
        default=None, description="Alertmanager's base URL; alerts are posted to its v2 API."
    )
    notify: tuple[str, ...] = Field(
        default=(),
        description="Apprise URLs (slack://…, msteams://…, pagerduty://…, mailto://…, "
        "json://…), used when no Alertmanager is named.",
    )
    notify_env: str | None = Field(
        default=None,
        description="An environment variable holding more Apprise URLs, space-separated "
        "(they carry secrets).",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("notify")
    @classmethod
    def _urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not _SCHEME.match(url):
                raise ValueError(f"{url!r} is not an Apprise URL (scheme://…, e.g. slack://…)")
        return urls


class OpenCostSource(BaseModel):
    """`cost: {opencost: {url: http://opencost.opencost:9003}}`: resource use and price of
    the endpoints on a cluster from OpenCost's Allocation API, instead of this table."""

    model_config = _FROZEN

    url: HttpUrl = Field(
        description="OpenCost's API (port 9003), or its UI's proxy ending in /model; "
        "`/allocation` is appended."
    )
    label: str = Field(
        default="app.kubernetes.io/name",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]*$",
        description="The pod label that names an endpoint (mlstack's endpoint pods carry "
        "app.kubernetes.io/name: <endpoint>).",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class CostTable(BaseModel):
    """`cost:`: prices for `mlstack cost` (per core-hour of CPU, GiB-hour of memory, GPU-hour),
    the GPUs assigned to each endpoint, and how long without a live request makes an
    endpoint idle."""

    model_config = _FROZEN

    currency: str = Field(default="USD", min_length=1, max_length=8)
    cpu_core_hour: float = Field(default=0.0, ge=0, description="Price of one core for an hour.")
    memory_gib_hour: float = Field(default=0.0, ge=0, description="Price of 1 GiB for an hour.")
    gpu_hour: float = Field(default=0.0, ge=0, description="Price of one GPU for an hour.")
    gpus: dict[str, int] = Field(
        default_factory=dict, description="GPUs assigned to each endpoint (by name)."
    )
    idle_after: Duration = Field(
        default=timedelta(days=7), description="No live request for this long: idle."
    )
    opencost: OpenCostSource | None = Field(
        default=None,
        description="Read the endpoints' use and price from OpenCost (on a cluster) instead "
        "of this machine's processes and these prices.",
    )

    @field_validator("gpus")
    @classmethod
    def _counts(cls, gpus: dict[str, int]) -> dict[str, int]:
        for endpoint, count in gpus.items():
            if count < 0:
                raise ValueError(f"{endpoint}: {count} GPUs; a count is 0 or more")
        return gpus
