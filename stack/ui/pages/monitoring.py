"""Monitoring (`/monitoring?model=churn`): per-feature drift scores and performance with
label coverage over time as plots, each check one click from its Evidently report, and
the alerts (`monitoring.breached` entries). Without a model: every monitored model and its
last verdict."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from stack.ui import plots
from stack.ui.app import MAX_VERSION, bounded, console_of, int_param, paginate
from stack.ui.guard import SANDBOXED
from stack.ui.readmodel import CheckRow

PLOTTED = 100  # the newest checks drawn; the table pages through all of them


def routes() -> list[Route]:
    return [
        Route("/monitoring", monitoring_page, name="monitoring"),
        Route("/monitoring/checks/{check:int}", check_page, name="check"),
        Route("/monitoring/checks/{check:int}/report", report, name="report"),
    ]


#: Evidently's drift tests whose score is a distance (drift at or above the threshold);
#: its other tests score a p-value (drift below it).
DISTANCES = frozenset({"ed", "hellinger", "jensenshannon", "kl_div", "psi", "wasserstein"})


def _drift_above(column: str, records: list[dict[str, object]]) -> bool:
    """Whether drift means a score above the threshold for `column`: as its own checks
    decided (`drifted` against score and threshold), else by its test's kind."""
    for record in records:
        score, threshold, drifted = (record.get(k) for k in ("score", "threshold", "drifted"))
        if (
            isinstance(score, int | float)
            and isinstance(threshold, int | float)
            and isinstance(drifted, bool)
            and score != threshold
        ):
            return drifted == (score > threshold)
    return any(record.get("method") in DISTANCES for record in records)


def _methods(names: list[str], records: dict[str, list[dict[str, object]]], kind: str) -> str:
    """The y axis' label: the tests the checks ran (`wasserstein distance`), else `kind`."""
    methods = sorted({str(r["method"]) for n in names for r in records[n] if r.get("method")})
    return f"{', '.join(methods)} {kind}" if methods else kind


def _drift_plots(checks: list[CheckRow]) -> Markup:
    """Drift scores per feature over time: one plot for distances (above the dashed line
    is drift, the axis scaled to the scores) and one for p-values (below it is drift)."""
    records: dict[str, list[dict[str, object]]] = defaultdict(list)
    points: dict[str, list[plots.Point]] = defaultdict(list)
    for check in checks:
        for column in check.result.get("drift", {}).get("columns", []) or []:
            if isinstance(column, dict) and isinstance(column.get("score"), int | float):
                name = str(column.get("column"))
                records[name].append(column)
                points[name].append((check.window_end, float(column["score"])))
    if not points:
        return Markup(plots.line_chart({}, title="drift score per feature"))
    kinds = {
        True: ("distance: above the dashed line is drift", None),  # scaled to the scores
        False: ("p-value: below the dashed line is drift", 1.0),
    }
    drawn = []
    for above, (caption, y_max) in kinds.items():
        names = [n for n in points if _drift_above(n, records[n]) == above]
        if not names:
            continue
        thresholds = {
            float(limit)
            for n in names
            for r in records[n]
            if isinstance(limit := r.get("threshold"), int | float)
        }
        drawn.append(
            plots.line_chart(
                {n: points[n] for n in names},
                title=f"drift score per feature ({caption})",
                y_max=y_max,
                threshold=thresholds.pop() if len(thresholds) == 1 else None,
                y_label=_methods(names, records, "distance" if above else "p-value"),
            )
        )
    return Markup("".join(drawn))


def _plots(checks: list[CheckRow]) -> dict[str, Markup]:
    performance: dict[str, list[plots.Point]] = defaultdict(list)
    for check in checks:
        perf = check.result.get("performance") or {}
        for metric, value in (perf.get("metrics") or {}).items():
            if isinstance(value, int | float):
                performance[metric].append((check.window_end, float(value)))
        if isinstance(perf.get("label_coverage"), int | float):
            performance["label coverage"].append((check.window_end, float(perf["label_coverage"])))
    return {
        "drift": _drift_plots(checks),
        "performance": Markup(
            plots.line_chart(
                performance, title="performance on labelled rows, and label coverage", y_max=1.0
            )
        ),
    }


def monitoring_page(request: Request) -> Response:
    console = console_of(request)
    model = request.query_params.get("model", "").strip()
    if not model:
        last = console.read.last_checks()
        return console.render(
            request,
            "monitoring_index.html",
            page=paginate([last[m] for m in sorted(last)], request),
        )
    page_number = int_param(request, "page", 1, minimum=1)
    per = int_param(request, "per", 20, minimum=1, maximum=200)
    checks, total = console.read.checks(model, limit=per, offset=(page_number - 1) * per)
    if total == 0 and not console.read.versions(model).get(model):
        raise HTTPException(404, f"No model is called {model!r} in this stack.")
    drawn, _ = console.read.checks(model, limit=PLOTTED)
    from stack.ui.app import Paged

    alerts = console.session.spine.audit_entries(subject=model, action="monitoring.breached")
    return console.render(
        request,
        "monitoring.html",
        model=model,
        page=Paged(checks, page_number, per, total),
        plots=_plots(drawn),
        alerts=list(reversed(alerts))[:50],
    )


def _check(request: Request) -> CheckRow:
    number = bounded("check", request.path_params["check"], minimum=1, maximum=MAX_VERSION)
    found = console_of(request).read.check(number)
    if found is None:
        raise HTTPException(404, f"There is no monitoring check {request.path_params['check']}.")
    return found


def check_page(request: Request) -> Response:
    check = _check(request)
    return console_of(request).render(
        request, "check.html", check=check, has_report=_report_file(check) is not None
    )


def _report_file(check: CheckRow) -> Path | None:
    if not check.report_uri:
        return None
    parts = urlsplit(check.report_uri)
    if parts.scheme not in ("", "file"):
        return None
    path = Path(unquote(parts.path))
    return path if path.suffix == ".html" and path.is_file() else None


def report(request: Request) -> Response:
    check = _check(request)
    path = _report_file(check)
    if path is None:
        raise HTTPException(404, f"Check {check.id} has no report on this machine.")
    # Evidently's inline scripts run sandboxed: they can read nothing of the console's origin
    return FileResponse(
        path, media_type="text/html", headers={"Content-Security-Policy": SANDBOXED}
    )
