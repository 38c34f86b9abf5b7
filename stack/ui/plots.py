"""Plots drawn on the server as inline SVG: no charting library, no script, works offline.

Every label is escaped here; callers mark the returned text safe. Widths and heights are SVG
user units (pixels at 100% zoom); times are aware datetimes, laid out left to right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

PALETTE = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#65a30d", "#db2777")
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 640, 220, 48, 150, 16, 28

Point = tuple[datetime, float]


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _x_scale(times: Sequence[datetime], width: float) -> tuple[float, float]:
    start = min(times).timestamp()
    span = max(max(times).timestamp() - start, 1.0)
    return start, width / span


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    y_max: float | None = None,
    threshold: float | None = None,
    y_label: str = "",
) -> str:
    """One line per series (a feature's drift score, a metric), with its name at the right;
    `threshold` draws a dashed line (a test's limit); `y_label` names the axis (what the
    values are: `wasserstein distance`). Points all at one time (a single check) stand in
    the middle of the plot, not on its axis. Empty series: a sentence instead."""
    points = [p for values in series.values() for p in values]
    if not points:
        return f'<p class="empty">No data yet for {escape(title)}.</p>'
    inner_w, inner_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    start, per_second = _x_scale([t for t, _ in points], inner_w)
    top = y_max if y_max is not None else max([v for _, v in points] + [threshold or 0, 1e-9])

    one_time = len({t for t, _ in points}) == 1

    def x(t: datetime) -> float:
        if one_time:
            return _PAD_L + inner_w / 2
        return _PAD_L + (t.timestamp() - start) * per_second

    def y(v: float) -> float:
        return _PAD_T + inner_h - min(max(v / top, 0.0), 1.0) * inner_h

    parts = [
        f'<svg class="plot" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{_PAD_L}" y1="{_PAD_T + inner_h}" x2="{_PAD_L + inner_w}" '
        f'y2="{_PAD_T + inner_h}" class="axis"/>',
        f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{_PAD_T + inner_h}" class="axis"/>',
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + 4}" class="tick" text-anchor="end">{top:.3g}</text>',
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + inner_h}" class="tick" text-anchor="end">0</text>',
        (
            f'<text x="12" y="{_PAD_T + inner_h / 2:.0f}" class="tick axis-label" '
            f'text-anchor="middle" transform="rotate(-90 12 {_PAD_T + inner_h / 2:.0f})">'
            f"{escape(y_label)}</text>"
            if y_label
            else ""
        ),
        f'<text x="{_PAD_L}" y="{_H - 8}" class="tick">{min(points)[0]:%Y-%m-%d %H:%M}</text>',
        f'<text x="{_PAD_L + inner_w}" y="{_H - 8}" class="tick" text-anchor="end">'
        f"{max(points)[0]:%Y-%m-%d %H:%M}</text>",
    ]
    if threshold is not None:
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_PAD_L + inner_w}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" class="threshold"><title>limit {threshold:g}</title></line>'
        )
    labels = _spread({name: y(sorted(v)[-1][1]) for name, v in series.items() if v})
    for index, (name, values) in enumerate(series.items()):
        ordered = sorted(values)
        if not ordered:
            continue
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in ordered)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{color(index)}" stroke-width="2"/>'
        )
        for t, v in ordered:
            parts.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{color(index)}">'
                f"<title>{escape(name)} {v:.4g} at {t:%Y-%m-%d %H:%M:%S}</title></circle>"
            )
        parts.append(
            f'<text x="{_PAD_L + inner_w + 6}" y="{labels[name] + 4:.1f}" class="legend" '
            f'fill="{color(index)}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _spread(wanted: Mapping[str, float], gap: float = 13.0) -> dict[str, float]:
    """Each series' label at its last point's height, moved down just enough that no two
    labels overlap (a line's name stays readable when lines end close together)."""
    placed: dict[str, float] = {}
    floor = float("-inf")
    for name, height in sorted(wanted.items(), key=lambda item: item[1]):
        placed[name] = max(height, floor + gap)
        floor = placed[name]
    return placed


#: The longest node name a lineage box shows whole (the rest: both ends, and a tooltip).
MAX_LABEL = 36
#: The colour of a shadow period in the timeline (a version that got a copy of the
#: requests without answering): none of the versions' own colours.
SHADOW_COLOR = "#7f7f7f"


def timeline(
    splits: Sequence[tuple[datetime, Mapping[str, float]]],
    *,
    until: datetime,
    title: str,
    shadows: Sequence[Sequence[str]] = (),
) -> str:
    """What served when: one band per traffic split from its time to the next (the last to
    `until`), each band stacked by the versions' weights, with a legend of versions; under
    it, in SHADOW_COLOR, the periods when versions shadowed the split (`shadows`, one
    tuple per split, as `ReadModel.shadows` gives them)."""
    if not splits:
        return f'<p class="empty">No traffic was ever routed for {escape(title)}.</p>'
    versions: list[str] = []
    for _, weights in splits:
        versions += [v for v in weights if v not in versions]
    band_h = 36
    shadowed = any(shadows)
    height = band_h + 40 + 18 * (len(versions) + shadowed)
    width = _W + 60
    inner_w = width - _PAD_L - 16
    times = [t for t, _ in splits] + [max(until, splits[-1][0])]
    start, per_second = _x_scale(times, inner_w)
    parts = [
        f'<svg class="plot timeline" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for index, (at, weights) in enumerate(splits):
        end = times[index + 1]
        x0 = _PAD_L + (at.timestamp() - start) * per_second
        x1 = max(_PAD_L + (end.timestamp() - start) * per_second, x0 + 2)
        y0 = 4.0
        total = sum(weights.values()) or 1.0
        for version, weight in weights.items():
            h = band_h * weight / total
            if h <= 0:
                continue
            parts.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{h:.1f}" '
                f'fill="{color(versions.index(version))}"><title>{escape(version)} '
                f"{weight:.0%} from {at:%Y-%m-%d %H:%M:%S}</title></rect>"
            )
            y0 += h
        if index < len(shadows) and shadows[index]:
            parts.append(
                f'<rect class="shadow" x="{x0:.1f}" y="{band_h + 5}" width="{x1 - x0:.1f}" '
                f'height="5" fill="{SHADOW_COLOR}"><title>shadow: '
                f"{escape(', '.join(shadows[index]))} from {at:%Y-%m-%d %H:%M:%S}</title></rect>"
            )
    parts.append(
        f'<text x="{_PAD_L}" y="{band_h + 22}" class="tick">{times[0]:%Y-%m-%d %H:%M}</text>'
        f'<text x="{_PAD_L + inner_w}" y="{band_h + 22}" class="tick" text-anchor="end">'
        f"{times[-1]:%Y-%m-%d %H:%M}</text>"
    )
    for index, version in enumerate(versions):
        y: float = band_h + 36 + 18 * index
        parts.append(
            f'<rect x="{_PAD_L}" y="{y - 10}" width="12" height="12" fill="{color(index)}"/>'
            f'<text x="{_PAD_L + 18}" y="{y}" class="legend">{escape(version)}</text>'
        )
    if shadowed:
        y = band_h + 36 + 18 * len(versions)
        parts.append(
            f'<rect x="{_PAD_L}" y="{y - 10}" width="12" height="12" fill="{SHADOW_COLOR}"/>'
            f'<text x="{_PAD_L + 18}" y="{y}" class="legend">shadow (a copy of the requests, '
            "no answers)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def graph(
    columns: Sequence[tuple[str, Sequence[str]]],
    edges: Sequence[tuple[str, str, str]],
    *,
    title: str,
    links: Mapping[str, str] | None = None,
    highlight: str | None = None,
) -> str:
    """A layered graph: `columns` are (kind, node labels) left to right, `edges` (source,
    target, relation) between labels; `links` makes a node a link (to its own page)."""
    if not any(nodes for _, nodes in columns):
        return f'<p class="empty">Nothing in the lineage of {escape(title)}.</p>'
    links = links or {}
    col_w, row_h, box_w, box_h = 280, 56, 260, 34
    rows = max(len(nodes) for _, nodes in columns)
    width, height = col_w * len(columns) + 20, 40 + row_h * rows
    where: dict[str, tuple[float, float]] = {}
    parts = [
        f'<svg class="plot graph" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#64748b"/></marker></defs>',
    ]
    for c, (kind, nodes) in enumerate(columns):
        x = 10 + c * col_w
        parts.append(f'<text x="{x}" y="14" class="tick">{escape(kind)}</text>')
        for r, label in enumerate(nodes):
            where[label] = (x, 26 + r * row_h)
    for source, target, relation in edges:
        if source not in where or target not in where:
            continue
        (sx, sy), (tx, ty) = where[source], where[target]
        parts.append(
            f'<line x1="{sx + box_w:.0f}" y1="{sy + box_h / 2:.0f}" x2="{tx:.0f}" '
            f'y2="{ty + box_h / 2:.0f}" class="edge" marker-end="url(#arrow)">'
            f"<title>{escape(relation)}</title></line>"
        )
    for label, (left, top) in where.items():
        # a box holds 36 characters; a longer name keeps both ends (its <title> is whole)
        short = label if len(label) <= MAX_LABEL else label[:17] + "…" + label[-18:]
        box = (
            f'<rect x="{left}" y="{top}" width="{box_w}" height="{box_h}" rx="6" '
            f'class="node{" current" if label == highlight else ""}"/>'
            f'<text x="{left + 8}" y="{top + 21}" class="label">{escape(short)}</text>'
            f"<title>{escape(label)}</title>"
        )
        href = links.get(label)
        parts.append(f'<a href="{escape(href)}">{box}</a>' if href else f"<g>{box}</g>")
    parts.append("</svg>")
    return "".join(parts)
