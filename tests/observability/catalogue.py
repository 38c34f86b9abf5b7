"""Every series name mlstack exports (what rules and dashboards may query): each metric of
the catalogues, a histogram with its _bucket, _sum and _count series."""

from __future__ import annotations

from stack.observability.checks import MONITOR_METRICS
from stack_bentoml.metrics import ENDPOINT_METRICS


def exported_series() -> set[str]:
    names = set()
    for name, (kind, _) in {**ENDPOINT_METRICS, **MONITOR_METRICS}.items():
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names
