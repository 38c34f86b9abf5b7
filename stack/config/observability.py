"""The stack file's `alerts:` section: where mlstack's own alerts go (monitoring breaches,
idle endpoints). Through Alertmanager when the stack names one (it groups, silences and
de-duplicates); otherwise straight to Apprise URLs (Slack, Teams, PagerDuty, email,
webhooks...), once per breach until it resolves, then a resolved notice."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

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
