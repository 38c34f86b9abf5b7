"""What a request is, as its client tags it: the `x-mlstack-traffic` header.

`live` (the default: real users), `bake` (sent to exercise a rollout), `test` and
`synthetic`, `probe` (a rollout controller's own request). The tag is logged with the
prediction; monitoring windows keep only `live` by default (`monitoring.include_traffic`),
and a rollout's health counts every kind but `test` and `probe` (the controller counts its
probes itself). A `probe` request may name the version that must answer it in
`x-mlstack-version` (any version the endpoint routes, weight 0 included); no other request
may choose its version."""

from __future__ import annotations

from collections.abc import Collection

from stack.contract.serving import TRAFFIC_KINDS

__all__ = [
    "NOT_JUDGED",
    "TRAFFIC_HEADER",
    "TRAFFIC_KINDS",
    "VERSION_HEADER",
    "pinned",
    "traffic_of",
]

TRAFFIC_HEADER = "x-mlstack-traffic"
VERSION_HEADER = "x-mlstack-version"
_KINDS = {kind.encode(): kind for kind in TRAFFIC_KINDS}
#: Kinds a rollout's health (and its judge) leaves out.
NOT_JUDGED = frozenset({"test", "probe"})


def traffic_of(value: bytes | None) -> str:
    """The kind a request's header names (`live` without one); ValueError naming the
    header and the kinds it takes for any other value."""
    if value is None:
        return "live"
    kind = _KINDS.get(value.strip().lower())
    if kind is None:
        shown = value.decode("latin-1")[:40]
        raise ValueError(
            f"header {TRAFFIC_HEADER}: {shown!r} is not one of {', '.join(TRAFFIC_KINDS)}"
        )
    return kind


def pinned(value: bytes | None, traffic: str, versions: Collection[str]) -> str | None:
    """The version a request names in `x-mlstack-version` (None without the header);
    ValueError naming the header when the request is not a probe or the endpoint routes no
    such version."""
    if value is None:
        return None
    shown = value.decode("latin-1")[:80]
    if traffic != "probe":
        raise ValueError(f"header {VERSION_HEADER} is taken only with {TRAFFIC_HEADER}: probe")
    if shown not in versions:
        raise ValueError(
            f"header {VERSION_HEADER}: {shown!r} is not routed here ({', '.join(sorted(versions))})"
        )
    return shown
