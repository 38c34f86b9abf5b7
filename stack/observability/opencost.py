"""OpenCost as `mlstack cost`'s source of resource use and price, for endpoints on a cluster
(`cost: {opencost: {url: …}}` in the stack file).

One request to OpenCost's Allocation API (`GET <url>/allocation`, documented at
https://opencost.io/docs/integrations/api) over the report's period, `window` as an RFC 3339
pair, aggregated by the label every mlstack endpoint pod carries (`app.kubernetes.io/name`:
the endpoint's name as a DNS label, all its versions together) and accumulated into one set.
Each allocation gives its core-hours, byte-hours, GPU-hours and `totalCost` over the
allocation's `minutes`, scaled here to a day. OpenCost prices them itself (its pricing
source: on-demand list prices or the cloud's bill), so the stack file's prices are not used
for those endpoints.

A down OpenCost, or an answer that is not an allocation set, is an `OpenCostError` naming the
URL, never a traceback."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stack.config.observability import OpenCostSource
from stack.errors import StackError

GIB = 1024.0**3
DAY_MINUTES = 1440.0


class OpenCostError(StackError):
    """OpenCost could not be read (down, refused, or an answer that is no allocation set)."""


@dataclass(frozen=True, slots=True)
class Allocation:
    """One endpoint's allocation over `minutes`: what it used and what OpenCost priced it at
    (in OpenCost's currency)."""

    name: str
    minutes: float
    cpu_core_hours: float
    ram_byte_hours: float
    gpu_hours: float
    total_cost: float

    @property
    def days(self) -> float:
        return max(self.minutes, 1.0) / DAY_MINUTES

    @property
    def cpu_seconds_per_day(self) -> float:
        return self.cpu_core_hours * 3600 / self.days

    @property
    def memory_gib(self) -> float:
        """Average memory held over the allocation's minutes."""
        return self.ram_byte_hours / (max(self.minutes, 1.0) / 60) / GIB

    @property
    def gpu_hours_per_day(self) -> float:
        return self.gpu_hours / self.days

    @property
    def cost_per_day(self) -> float:
        return self.total_cost / self.days


def endpoint_key(endpoint: str) -> str:
    """The value of the endpoint pods' label for `endpoint` (its name as a DNS label)."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in endpoint.lower()).strip("-")
    return cleaned[:63].rstrip("-")


def allocations(source: OpenCostSource, since: datetime, until: datetime) -> dict[str, Allocation]:
    """Every allocation OpenCost has from `since` to `until`, by the label's value (OpenCost's
    own `__idle__` and `__unallocated__` included). Raises OpenCostError naming the URL."""
    url = f"{str(source.url).rstrip('/')}/allocation"
    query = {
        "window": f"{_rfc3339(since)},{_rfc3339(until)}",
        "aggregate": f"label:{source.label}",
        "accumulate": "true",
    }
    address = f"{url}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(address, timeout=source.timeout_seconds) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        raise OpenCostError(
            f"OpenCost at {url} answered {exc.code}: {exc.read()[:200]!r} "
            "(cost.opencost.url: OpenCost's API, port 9003, or its UI's /model)"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise OpenCostError(
            f"OpenCost at {url} unreachable: {getattr(exc, 'reason', exc)} "
            "(cost.opencost.url in the stack file)"
        ) from None
    try:
        return _parsed(json.loads(body))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise OpenCostError(
            f"OpenCost at {url} answered something that is no allocation set "
            f"({type(exc).__name__}: {exc}); is cost.opencost.url OpenCost's API?"
        ) from None


def _parsed(answer: Any) -> dict[str, Allocation]:
    """`{"code": 200, "data": [{name: allocation, …}, …]}`, one set per step, summed."""
    if not isinstance(answer, Mapping) or answer.get("code") != 200:
        code = answer.get("code") if isinstance(answer, Mapping) else None
        message = answer.get("message") if isinstance(answer, Mapping) else None
        raise ValueError(f"code {code!r}: {message or 'no data'}")
    sets: Iterable[Mapping[str, Any]] = answer["data"] or []
    found: dict[str, Allocation] = {}
    for each in sets:
        for name, item in (each or {}).items():
            one = Allocation(
                name,
                float(item.get("minutes") or 0.0),
                float(item.get("cpuCoreHours") or 0.0),
                float(item.get("ramByteHours") or 0.0),
                float(item.get("gpuHours") or 0.0),
                float(item["totalCost"]),
            )
            before = found.get(name)
            found[name] = one if before is None else _sum(before, one)
    return found


def _sum(a: Allocation, b: Allocation) -> Allocation:
    return Allocation(
        a.name,
        a.minutes + b.minutes,
        a.cpu_core_hours + b.cpu_core_hours,
        a.ram_byte_hours + b.ram_byte_hours,
        a.gpu_hours + b.gpu_hours,
        a.total_cost + b.total_cost,
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
