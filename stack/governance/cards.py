"""Model cards, in Markdown and HTML, from the registry, the tracker, the spine and the recipe.

Both formats are rendered from one list of sections so they always say the same thing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from stack.config.recipe_file import Recipe
from stack.contract.registry import ModelVersion
from stack.contract.roles import Role
from stack.contract.tracking import RunRecord
from stack.governance.history import serving_history
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef

Section = tuple[str, list[str] | list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class CardPaths:
    markdown: Path
    html: Path


def card_paths(session: StackSession, ref: str) -> CardPaths:
    folder = session.home / "cards"
    return CardPaths(folder / f"{ref}.md", folder / f"{ref}.html")


def write_card(session: StackSession, version: ModelVersion, recipe: Recipe | None) -> CardPaths:
    """Write both files (replacing older ones) and log them to the version's run."""
    run = _run(session, version)
    sections = _sections(session, version, recipe, run)
    paths = card_paths(session, version.ref)
    paths.markdown.parent.mkdir(parents=True, exist_ok=True)
    title = f"Model card: {version.ref}"
    paths.markdown.write_text(_markdown(title, sections), encoding="utf-8")
    paths.html.write_text(_html(title, sections), encoding="utf-8")
    if run is not None:
        for path in (paths.markdown, paths.html):
            session.tracker.log_artifact(run.ref, path, artifact_path="model_card")
    return paths


def _run(session: StackSession, version: ModelVersion) -> RunRecord | None:
    if version.run_id is None or not session.has(Role.TRACKER):
        return None
    return session.tracker.get_run(version.run_id)


def _sections(
    session: StackSession, version: ModelVersion, recipe: Recipe | None, run: RunRecord | None
) -> list[Section]:
    spine = session.spine
    spec = recipe.spec.model if recipe else None
    sections: list[Section] = [
        (
            "Summary",
            [
                ("model", version.model),
                ("version", str(version.version)),
                ("state", version.state.value),
                ("owner", (spec.owner if spec else None) or version.tags.get("mlstack.owner", "—")),
                (
                    "risk tier",
                    (spec.risk_tier if spec else None)
                    or version.tags.get("mlstack.risk_tier", "—"),
                ),
                ("recipe", recipe.name if recipe else version.tags.get("mlstack.recipe", "—")),
                ("source", version.source_uri),
            ],
        ),
        ("Intended use", [spec.intended_use or "—" if spec else "—"]),
        ("Limitations", [spec.limitations or "—" if spec else "—"]),
    ]
    if run is not None:
        data = [
            f"{d.name}: {d.rows} rows, columns {', '.join(d.columns)}; {d.digest}"
            for d in run.datasets
        ] or ["—"]
        sections.append(("Training data", data))
        code = run.code
        sections.append(
            (
                "Training run",
                [
                    ("run", run.ref.run_id),
                    ("code commit", (code.commit or "unknown") if code else "unknown"),
                    ("uncommitted changes", "yes" if code and code.dirty else "no"),
                    *sorted(run.params.items()),
                ],
            )
        )
        sections.append(
            ("Evaluation", sorted((k, f"{v:g}") for k, v in run.metrics.items()) or ["—"])
        )
    upstream = spine.upstream(NodeRef(NodeKind(session.version_kind), version.ref))
    sections.append(
        ("Lineage", [f"{e.source} —{e.relation}→ {e.target}" for e in upstream] or ["—"])
    )
    gates = spine.audit_entries(subject=version.ref, action="gate.passed") + spine.audit_entries(
        subject=version.ref, action="gate.failed"
    )
    gate_lines = []
    for entry in sorted(gates, key=lambda e: e.seq):
        rules = "; ".join(
            f"{r['rule']} {'ok' if r['passed'] else 'FAILED'} ({r['detail']})"
            for r in entry.payload.get("rules", [])
        )
        gate_lines.append(
            f"{entry.at:%Y-%m-%d %H:%M} to {entry.payload.get('target')}: "
            f"{entry.action.split('.')[1]} — {rules or 'no rules'}"
        )
    sections.append(("Promotion gates", gate_lines or ["—"]))
    approvals = [
        f"{a.at:%Y-%m-%d %H:%M} {a.actor} {a.decision} for {a.target_state}"
        + (f": {a.reason}" if a.reason else "")
        for a in spine.approvals(version.ref)
    ]
    sections.append(("Approvals", approvals or ["—"]))
    states = [
        f"{e.at:%Y-%m-%d %H:%M} {e.payload.get('from')} → {e.payload.get('to')} by "
        f"{e.actor}" + (f": {e.reason}" if e.reason else "")
        for e in spine.audit_entries(subject=version.ref, action="state.changed")
    ]
    sections.append(("State history", states or ["registered as candidate"]))
    sections.append(("Monitoring", _monitoring(session, version)))
    return sections


def _monitoring(session: StackSession, version: ModelVersion) -> list[tuple[str, str]]:
    """This version's own monitoring: the checks that judged it and the alerts they raised
    (another version's, though of the same model, are not its status)."""
    spine = session.spine
    served = [c for c in serving_history(spine, version.model) if c.version == version.ref]
    checks = spine.checks(version.model, version=version.ref, limit=1)
    alerts = spine.audit_entries(subject=version.ref, action="monitoring.breached")
    return [
        ("served since", f"{served[-1].at:%Y-%m-%d %H:%M}" if served else "never served"),
        (
            "last monitoring check",
            f"{checks[0].at:%Y-%m-%d %H:%M} {checks[0].status} on {checks[0].endpoint}"
            if checks
            else "none",
        ),
        ("last drift alert", f"{alerts[-1].at:%Y-%m-%d %H:%M}" if alerts else "none"),
    ]


def _markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for heading, body in sections:
        out += [f"## {heading}", ""]
        if body and isinstance(body[0], tuple):
            out += ["| | |", "|---|---|"]
            out += [f"| {k} | {v} |" for k, v in body]
        else:
            out += [f"- {line}" for line in body]
        out.append("")
    return "\n".join(out)


def _html(title: str, sections: list[Section]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}table{border-collapse:collapse}td{border:1px solid #ccc;"
        "padding:.25rem .5rem}th{text-align:left}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for heading, body in sections:
        parts.append(f"<h2>{e(heading)}</h2>")
        if body and isinstance(body[0], tuple):
            rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in body)
            parts.append(f"<table>{rows}</table>")
        else:
            parts.append("<ul>" + "".join(f"<li>{e(str(line))}</li>" for line in body) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
