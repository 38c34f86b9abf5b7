"""Telling people about a breach: a log line always, a JSON POST to a webhook when one is
configured. A webhook that is down is reported in the result, never raised: the check and
its record matter more than the message."""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from stack.config.monitoring import AlertsSection

log = logging.getLogger("mlstack.alerts")


def webhook_url(section: AlertsSection) -> str | None:
    if section.webhook is not None:
        return str(section.webhook)
    if section.webhook_env:
        return os.environ.get(section.webhook_env) or None
    return None


def send_alert(section: AlertsSection, alert: Mapping[str, Any]) -> str | None:
    """Log the alert and POST it to the webhook; returns what went wrong, if anything."""
    log.warning(
        "ALERT %s on %s: %s", alert["version"], alert["endpoint"], "; ".join(alert["breaches"])
    )
    url = webhook_url(section)
    if url is None:
        if section.webhook_env:
            return f"no webhook: ${section.webhook_env} is not set"
        return None
    body = json.dumps(alert, sort_keys=True, default=str).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=section.timeout_seconds) as answer:
            if answer.status >= 300:
                return f"webhook {url} answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"webhook {url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"webhook {url} unreachable: {getattr(exc, 'reason', exc)}"
    return None
