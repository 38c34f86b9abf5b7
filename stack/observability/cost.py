"""What each endpoint costs (`mlstack cost`): its processes' CPU seconds and memory, the GPUs
the stack file assigns it, priced from the stack file's `cost:` table, per day and per 1,000
predictions, and split over its versions: the CPU by each version's share of the time spent
answering (the prediction log's per-request latency, summed), memory and GPUs by its share of
the predictions. Two versions on one endpoint thus cost alike per 1,000 predictions only when
they take alike to answer: a challenger twice as slow is priced about twice the CPU per
prediction, which a `max_ratio` gate on `cost_per_1k_predictions` sees.

Resource use is read from the endpoint's processes on this machine (Linux `/proc`, asked of
the server through `ProcessInspector`): CPU seconds since each process started, scaled to a
day by its uptime, and resident memory now. With `cost: {opencost: {url: …}}`, endpoints on
a cluster are read from OpenCost instead (opencost.py): their use over the period and
OpenCost's own price for it; an endpoint OpenCost has no allocation for is measured here.
Predictions (rows answered, shadows included: they cost the same) are read from the
prediction log over the period. An endpoint that answered no live request for `idle_after`
is idle: the report names the command that retires it, and `--alert` raises
`MlstackEndpointIdle` through the stack's alert routing."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from stack.config.observability import CostTable
from stack.contract.capabilities import ServerCapability
from stack.contract.serving import PredictionLogReader, ProcessInspector
from stack.errors import StackConfigError
from stack.observability.opencost import Allocation, allocations, endpoint_key
from stack.plugins.capabilities import declares
from stack.session import StackSession

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Usage:
    """One endpoint's resource use and traffic over a period."""

    endpoint: str
    cpu_seconds_per_day: float
    memory_gib: float
    gpus: int
    predictions: dict[str, int]  # rows answered per version in the period
    period_days: float
    last_request: datetime | None
    processes: int
    notes: tuple[str, ...] = ()
    priced_per_day: float | None = None  # priced by its source (OpenCost), not the table
    gpu_hours_per_day: float | None = None  # measured (OpenCost); else gpus x 24
    #: seconds spent answering per version in the period (the log's latencies, summed);
    #: empty where the log keeps no latency
    busy_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CostLine:
    """One version's share of its endpoint's cost (`version` "-": no traffic to share)."""

    endpoint: str
    model: str
    version: str
    predictions_per_day: float
    cpu_seconds_per_day: float
    memory_gib: float
    gpu_hours_per_day: float
    cost_per_day: float
    cost_per_1k: float | None  # None: no prediction in the period
    currency: str


@dataclass
class CostReport:
    lines: list[CostLine]
    idle: dict[str, str] = field(default_factory=dict)  # endpoint -> what to run
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "lines": [asdict(line) for line in self.lines],
            "idle": self.idle,
            "notes": self.notes,
        }


def cpu_shares(usage: Usage) -> dict[str, float]:
    """Each version's share of the endpoint's CPU: of the time spent answering when the log
    timed every version's requests, else of the predictions."""
    rows = {v: n for v, n in usage.predictions.items() if n}
    busy = {v: usage.busy_seconds.get(v, 0.0) for v in rows}
    total_busy = sum(busy.values())
    if rows and all(busy.values()) and total_busy > 0:
        return {v: seconds / total_busy for v, seconds in busy.items()}
    total = sum(rows.values())
    return {v: n / total for v, n in rows.items()} if total else {}


def price(usage: Usage, table: CostTable) -> list[CostLine]:
    """`usage` priced by `table`, one line per version: the CPU by its share of the time spent
    answering (`cpu_shares`), memory and GPUs by its share of the predictions. A price from
    the source (OpenCost) is split in the table's proportion of CPU to the rest (all of it as
    CPU when the table prices nothing)."""
    gpu_hours = usage.gpus * 24.0 if usage.gpu_hours_per_day is None else usage.gpu_hours_per_day
    cpu_day = usage.cpu_seconds_per_day / 3600 * table.cpu_core_hour
    rest_day = usage.memory_gib * 24 * table.memory_gib_hour + gpu_hours * table.gpu_hour
    if usage.priced_per_day is not None:
        whole = cpu_day + rest_day
        scale = usage.priced_per_day / whole if whole > 0 else 0.0
        cpu_day, rest_day = (
            (cpu_day * scale, rest_day * scale) if whole > 0 else (usage.priced_per_day, 0.0)
        )
    day = cpu_day + rest_day
    total = sum(usage.predictions.values())
    if not total:
        return [CostLine(usage.endpoint, "-", "-", 0.0, usage.cpu_seconds_per_day,
                         usage.memory_gib, gpu_hours, day, None, table.currency)]  # fmt: skip
    lines = []
    cpu = cpu_shares(usage)
    for version, rows in sorted(usage.predictions.items()):
        share = rows / total
        per_day = rows / usage.period_days
        cost = cpu_day * cpu.get(version, 0.0) + rest_day * share
        lines.append(
            CostLine(
                usage.endpoint,
                version.partition("@")[0],
                version,
                per_day,
                usage.cpu_seconds_per_day * cpu.get(version, 0.0),
                usage.memory_gib * share,
                gpu_hours * share,
                cost,
                cost / per_day * 1000 if per_day else None,
                table.currency,
            )
        )
    return lines


def is_idle(usage: Usage, idle_after: timedelta, now: datetime) -> bool:
    return usage.last_request is None or now - usage.last_request >= idle_after


def measure(
    session: StackSession,
    endpoint: str,
    since: datetime,
    now: datetime,
    allocation: Allocation | None = None,
) -> Usage:
    """`endpoint`'s use (its OpenCost `allocation` over the period when given, else on this
    machine now) and its traffic from `since` to `now`."""
    table = session.stack.cost
    notes: list[str] = []
    pids: list[int] = []
    if allocation is not None:
        pass  # its use comes from OpenCost
    elif declares(session, ServerCapability.PROCESSES):
        inspector = cast(ProcessInspector, session.server)
        for found in inspector.processes(endpoint):
            pids += [p.pid for p in found.processes if not p.stray]
    else:
        notes.append("the server cannot list its processes: CPU and memory unknown")
    cpu, memory = _process_use(pids)
    if allocation is not None:
        cpu, memory = allocation.cpu_seconds_per_day, allocation.memory_gib
    predictions: Counter[str] = Counter()
    busy: dict[str, float] = {}
    last: datetime | None = None
    if declares(session, ServerCapability.PREDICTION_LOG):
        reader = cast(PredictionLogReader, session.server)
        for request in reader.logged(endpoint, since=since, until=now):
            if request.role == "feedback" or request.status != 200:
                continue
            predictions[request.model_version] += len(request.inputs)
            if request.latency_ms is not None:
                seconds = busy.get(request.model_version, 0.0) + request.latency_ms / 1000
                busy[request.model_version] = seconds
            if request.role != "shadow" and request.traffic == "live":
                last = request.at if last is None else max(last, request.at)
    else:
        notes.append("the server keeps no prediction log: predictions unknown")
    # last live request before the period (an idle check looks further back than the period)
    if last is None and declares(session, ServerCapability.PREDICTION_LOG):
        reader = cast(PredictionLogReader, session.server)
        earlier = [
            r.at
            for r in reader.logged(endpoint, since=now - table.idle_after, until=since)
            if r.role in ("live", "fallback") and r.traffic == "live"
        ]
        last = max(earlier, default=None)
    return Usage(
        endpoint,
        cpu,
        memory,
        table.gpus.get(endpoint, 0),
        dict(predictions),
        (now - since).total_seconds() / DAY,
        last,
        len(pids),
        tuple(notes),
        None if allocation is None else allocation.cost_per_day,
        None if allocation is None else allocation.gpu_hours_per_day,
        dict(busy),
    )


def report(session: StackSession, period: timedelta, now: datetime) -> CostReport:
    """Every endpoint's cost over `period` up to `now`. Raises OpenCostError when the stack
    names an OpenCost that cannot be read, StackConfigError when `cost.gpus` names an
    endpoint the server does not have."""
    table = session.stack.cost
    lines: list[CostLine] = []
    result = CostReport(lines)
    found: dict[str, Allocation] = {}
    endpoints = session.server.endpoints()
    _check_gpus(session, {endpoint.name for endpoint in endpoints})
    if table.opencost is not None:
        found = allocations(table.opencost, now - period, now)
    for endpoint in endpoints:
        allocation = found.get(endpoint_key(endpoint.name))
        if table.opencost is not None and allocation is None:
            result.notes.append(
                f"{endpoint.name}: OpenCost has no allocation labelled "
                f"{table.opencost.label}={endpoint_key(endpoint.name)} in the period; "
                "measured on this machine and priced from the table"
            )
        usage = measure(session, endpoint.name, now - period, now, allocation)
        lines += price(usage, table)
        result.notes += [f"{endpoint.name}: {note}" for note in usage.notes]
        if is_idle(usage, table.idle_after, now):
            result.idle[endpoint.name] = f"mlstack undeploy {endpoint.name}"
    return result


def _check_gpus(session: StackSession, names: set[str]) -> None:
    """Raises StackConfigError naming the stack file and each `cost.gpus` key that names no
    endpoint the server has (a typo would otherwise price no GPU, silently)."""
    unknown = sorted(set(session.stack.cost.gpus) - names)
    if not unknown:
        return
    where = f"{session.source}: " if session.source else ""
    problems = [f"{where}cost.gpus.{name}: no endpoint named {name}" for name in unknown]
    known = ", ".join(sorted(names)) or "none"
    raise StackConfigError(f"{'; '.join(problems)} (endpoints: {known})", problems)


def log_cost_metrics(session: StackSession, found: CostReport) -> list[str]:
    """Each priced version's `cost_per_1k_predictions` logged to its training run (where the
    gates read metrics); what was logged, one line each."""
    from stack.contract.tracking import RunRef

    logged = []
    for line in found.lines:
        model, _, number = line.version.partition("@")
        if line.cost_per_1k is None or not number.isdigit():
            continue
        version = session.registry.get_version(model, int(number))
        if version.run_id is None:
            logged.append(f"{line.version}: no training run to log its cost to")
            continue
        metric = {"cost_per_1k_predictions": line.cost_per_1k}
        session.tracker.log_metrics(RunRef(version.run_id, ""), metric)
        logged.append(f"{line.version}: cost_per_1k_predictions {line.cost_per_1k:.6g} logged")
    return logged


def _process_use(pids: list[int]) -> tuple[float, float]:
    """CPU seconds per day (each process's CPU time over its uptime) and resident GiB."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        boot_uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return 0.0, 0.0
    cpu_per_day = 0.0
    rss_kib = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / ticks
        alive = max(boot_uptime - int(fields[19]) / ticks, 1.0)
        cpu_per_day += used / alive * DAY
        rss_kib += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")),
            0,
        )
    return cpu_per_day, rss_kib / 1024 / 1024
