"""What runs for an endpoint, in facts and in words: its processes as found on the machine
(family.py), what its port answered (`GET /endpoint`: the endpoint's name, revision and
why it is degraded, if it is), the challengers' pid files (isolation.py) and the prediction
log's rows waiting in the spill folder (spill.py). `mlstack rollout status` prints it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.contract.serving import EndpointProcesses, ServedProcess
from stack_bentoml.family import Family, Member, running
from stack_bentoml.spec import EndpointSpec


def describe(
    spec: EndpointSpec,
    server: int | None,
    family: Family,
    answer: Mapping[str, Any],
    isolated: Path,
    spill: Path | None = None,
) -> EndpointProcesses:
    """`server` is the recorded server pid; `answer` what `GET /endpoint` on the port said
    (empty: nothing answered); `isolated` the folder of the challengers' pid files; `spill`
    the folder where prediction-log rows wait while the log refuses them."""
    port = f":{spec.port}"
    live = server if server in {m.pid for m in family.members} else None
    strays = family.strays(live)
    answering = answer.get("revision") if answer.get("name") == spec.name else None
    if not isinstance(answering, int):
        answering = None
    problems: list[str] = []
    if live is None:
        problems.append(f"server pid {server} is dead" if server else "no server pid recorded")
    if strays:
        what = ", ".join(_named(m, port) for m in strays)
        problems.append(f"left over from a dead server (nothing manages them): {what}")
    if answer and answering is None:
        problems.append(f"{port} answers for another endpoint ({answer.get('name')!r})")
    elif answering is None and family.port_held:
        problems.append(f"{port} is held, but nothing answers on it")
    elif answering is None and live is not None:
        problems.append(f"server pid {live} runs, but nothing answers on {port} (starting?)")
    if answering is not None and live is None:
        problems.append(f"revision {answering} answers on {port} with no server behind it")
    elif answering is not None and answering < spec.revision:
        problems.append(
            f"{port} answers revision {answering}; the endpoint file is at {spec.revision}"
        )
    if family.strangers:
        pids = ", ".join(str(p) for p in family.strangers)
        problems.append(f"{port} is also held by pid {pids}, not one of this endpoint's")
    elif family.port_held and not any(m.listening for m in family.members):
        problems.append(f"{port} is held by a process this user cannot see")
    problems.extend(_dead_challengers(spec, family, isolated))
    degraded = degraded_reasons(answer if answering is not None else {}, spill)
    problems.extend(degraded)
    return EndpointProcesses(
        endpoint=spec.name,
        url=spec.url,
        revision=spec.revision,
        answering=answering,
        running=live is not None and answering is not None,
        processes=tuple(
            ServedProcess(m.pid, m.role, m.listening, stray=m in strays) for m in family.members
        ),
        problems=tuple(problems),
        degraded=tuple(degraded),
    )


def degraded_reasons(answer: Mapping[str, Any], spill: Path | None) -> list[str]:
    """What the worker that answered `GET /endpoint` (`answer`) says is degraded (its
    prediction log refusing rows); else rows left waiting in the `spill` folder (by a
    worker that died, or a server gone)."""
    degraded = answer.get("degraded")
    if isinstance(degraded, list) and degraded:
        return [str(reason) for reason in degraded]
    if spill is None:
        return []
    from stack_bentoml.spill import waiting

    left = waiting(spill)
    if not left.files:
        return []
    return [
        f"{left.rows} prediction log rows wait in {spill} to be replayed into the log (by the "
        "endpoint's next flush the log takes; by the next server if none runs)"
    ]


def _named(member: Member, port: str) -> str:
    held = f" (holds {port})" if member.listening else ""
    return f"{member.role} pid {member.pid}{held}"


def _dead_challengers(spec: EndpointSpec, family: Family, isolated: Path) -> list[str]:
    """A challenger's pid file names its version and pid (`churn-v2.4711.pid`); one whose
    process is gone, with no live process for the same version, is a dead challenger."""
    files: dict[str, list[int]] = {}
    for path in isolated.glob("*.pid"):
        label, _, pid = path.stem.rpartition(".")
        if pid.isdigit():
            files.setdefault(label, []).append(int(pid))
    live = {r for r, w in spec.weights.items() if w > 0}
    dead = []
    for label, pids in sorted(files.items()):
        if any(running(family, pid) for pid in pids):
            continue
        ref = "@".join(label.rsplit("-v", 1))
        if ref in live:
            share = "the champion answers its share"
        else:
            share = "its shadow answers are lost" if ref in spec.shadows else "it takes no traffic"
        dead.append(f"challenger {ref} (pid {', '.join(map(str, pids))}) is dead: {share}")
    return dead
